"""Wall time without a gap: which nodes get a replacement before their warning (pure policy)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from juqueue.policy.replacement import (Replacement, ReplacementSettings, RunAtWarning, WarnedNode, protected,
                                        replacements_to_start, runs_outliving)
from juqueue.policy.slot_placement import NodeSlots, RunDemand

NOW = 100_000.0
LEAD = 600.0
SETTINGS = ReplacementSettings(lead_s=LEAD, num_slots=4, max_jobs=4, grace_period_s=30.0)


def warned(name: str, in_s: float, *runs: RunAtWarning, replaced: bool = False) -> WarnedNode:
    return WarnedNode(name, NOW + in_s, runs, replaced=replaced)


def other(name: str, used: int = 0, slots: int = 4, starting: bool = False) -> NodeSlots:
    return NodeSlots(name, "c", slots, frozenset(range(used)), accepting=not starting, starting=starting)


def test_a_node_whose_run_outlives_its_warning_gets_a_replacement_within_the_lead():
    node = warned("a", 500, RunAtWarning("r", 1, None))
    (rep,) = replacements_to_start([node], [], [], SETTINGS, live_nodes=1, now=NOW)
    assert rep == Replacement("a", ("r",), NOW + 500 + 30)


def test_not_before_the_lead_nor_after_the_warning_nor_twice():
    run = RunAtWarning("r", 1, None)
    assert replacements_to_start([warned("a", LEAD + 1, run)], [], [], SETTINGS, 1, NOW) == []
    assert replacements_to_start([warned("a", 0, run)], [], [], SETTINGS, 1, NOW) == []
    assert replacements_to_start([warned("a", 10, run, replaced=True)], [], [], SETTINGS, 1, NOW) == []
    assert replacements_to_start([warned("a", 10, run)], [], [], ReplacementSettings(0, 4, 4), 1, NOW) == []


def test_runs_that_end_before_the_warning_need_no_replacement():
    node = warned("a", 300, RunAtWarning("done-soon", 1, NOW + 299), RunAtWarning("long", 2, NOW + 301))
    assert [r.gid for r in runs_outliving(node)] == ["long"]
    short = warned("b", 300, RunAtWarning("done-soon", 1, NOW + 100))
    assert replacements_to_start([short], [], [], SETTINGS, 1, NOW) == []


def test_a_run_past_its_median_is_not_taken_for_one_about_to_end():
    """A lone long run past its experiment's median still needs a slot at the warning: its node
    gets a replacement, so the drain does not leave it waiting a whole queue wait. Before its
    median, ending before the warning, it needs none; a `duration` of its own is trusted."""
    past = warned("a", 300, RunAtWarning("long", 1, NOW - 100, estimated=True))
    assert [r.gid for r in runs_outliving(past, NOW)] == ["long"]
    (rep,) = replacements_to_start([past], [], [], SETTINGS, 1, NOW)
    assert rep.runs == ("long",)
    ending = warned("b", 300, RunAtWarning("ending", 1, NOW + 100, estimated=True))
    assert runs_outliving(ending, NOW) == () and replacements_to_start([ending], [], [], SETTINGS, 1, NOW) == []
    own = warned("c", 300, RunAtWarning("declared", 1, NOW - 100, estimated=False))
    assert runs_outliving(own, NOW) == () and replacements_to_start([own], [], [], SETTINGS, 1, NOW) == []


def test_no_replacement_when_the_other_nodes_take_the_runs():
    node = warned("a", 300, RunAtWarning("r1", 1, None), RunAtWarning("r2", 2, None))
    assert replacements_to_start([node], [other("b", used=1)], [], SETTINGS, 2, NOW) == []  # 3 free on b
    # ... but not when ready runs waiting for b take that room first
    (rep,) = replacements_to_start([node], [other("b", used=1)], [RunDemand("q", 2)], SETTINGS, 2, NOW)
    assert rep.runs == ("r1", "r2")
    # free slots that only add up do not hold a 2-slot run
    assert replacements_to_start([warned("a", 300, RunAtWarning("k", 2, None))], [other("b", 3), other("c", 3)],
                                 [], SETTINGS, 3, NOW) != []


def test_never_past_max_jobs_and_earliest_warning_first():
    nodes = [warned(n, s, RunAtWarning(f"{n}r", 4, None)) for n, s in (("late", 500), ("early", 100), ("mid", 300))]
    plan = replacements_to_start(nodes, [], [], SETTINGS, live_nodes=3, now=NOW)
    assert [r.node for r in plan] == ["early"]
    assert replacements_to_start(nodes, [], [], SETTINGS, live_nodes=4, now=NOW) == []


def test_two_warned_nodes_share_one_replacement_when_their_runs_fit_on_it():
    nodes = [warned("a", 100, RunAtWarning("ar", 2, None)), warned("b", 200, RunAtWarning("br", 2, None))]
    plan = replacements_to_start(nodes, [], [], SETTINGS, live_nodes=2, now=NOW)
    assert [r.node for r in plan] == ["a"]  # b's runs fit the room left on a's replacement


def test_protection_lasts_until_the_warning_plus_grace():
    assert protected(NOW + 1, NOW) and not protected(NOW, NOW) and not protected(None, NOW)


@st.composite
def _situations(draw: st.DrawFn):
    num_slots = draw(st.integers(1, 4))
    max_jobs = draw(st.integers(0, 8))
    nodes = []
    for i in range(draw(st.integers(0, 5))):
        runs = []
        left = draw(st.integers(0, num_slots))
        while left:
            k = draw(st.integers(1, left))
            left -= k
            runs.append(RunAtWarning(f"n{i}r{len(runs)}", k, draw(st.none() | st.floats(NOW - 100, NOW + 2_000))))
        nodes.append(WarnedNode(f"n{i}", NOW + draw(st.floats(-100, 1_500)), tuple(runs), replaced=draw(st.booleans())))
    others = [NodeSlots(f"o{i}", "c", num_slots, frozenset(range(draw(st.integers(0, num_slots)))),
                        accepting=True) for i in range(draw(st.integers(0, 3)))]
    ready = [RunDemand(f"q{i}", draw(st.integers(1, num_slots))) for i in range(draw(st.integers(0, 4)))]
    live = len(nodes) + len(others) + draw(st.integers(0, 3))
    return nodes, others, ready, ReplacementSettings(LEAD, num_slots, max_jobs, 30.0), live


@given(_situations())
def test_replacements_respect_max_jobs_the_lead_and_need(situation):
    nodes, others, ready, settings, live = situation
    plan = replacements_to_start(nodes, others, ready, settings, live, NOW)
    assert len(plan) <= max(0, settings.max_jobs - live)
    by_name = {n.name: n for n in nodes}
    assert len({r.node for r in plan}) == len(plan)
    for rep in plan:
        node = by_name[rep.node]
        assert not node.replaced and node.warning_at - LEAD <= NOW < node.warning_at
        assert set(rep.runs) == {r.gid for r in runs_outliving(node)} and rep.runs
        assert rep.protect_until == node.warning_at + settings.grace_period_s
