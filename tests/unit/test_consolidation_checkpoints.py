"""The checkpoint-aware cost of a move (policy/consolidation_cost): work since the last
checkpoint plus the restart cost, the oldest runs stay, moved runs go next to the
longest-running ones, and each move says what it expects to lose and save."""

from __future__ import annotations

from juqueue.policy.consolidation import plan_cluster
from juqueue.policy.consolidation_cost import at_risk_s, lost_node_seconds, oldest_runs, run_lost_s
from juqueue.policy.consolidation_model import ClusterSettings, ClusterSnapshot, NodeSnapshot, RunOnNode
from juqueue.policy.consolidation_reasons import explain_move, explain_plan
from juqueue.policy.replacement import RunAtWarning, WarnedNode, runs_outliving

NOW = 200_000.0
HOUR = 3600.0


def _run(gid: str, age: float, **kw) -> RunOnNode:
    kw.setdefault("checkpoint_interval_s", HOUR)
    kw.setdefault("restart_cost_s", 300.0)
    return RunOnNode(gid, NOW - age, **kw)


def _node(name: str, *runs: RunOnNode) -> NodeSnapshot:
    return NodeSnapshot(name, 4, started_at=NOW - 100_000, runs=runs)


def _cluster(*nodes: NodeSnapshot, target: int) -> ClusterSnapshot:
    settings = ClusterSettings(num_slots=4, max_jobs=8, move_cooldown_s=0.0)
    return ClusterSnapshot("c", settings, target, nodes, surplus_since=NOW - 600)


def _tail(runs: int = 4) -> NodeSnapshot:
    """A node of the cluster's oldest runs: they stay, the test is about the others."""
    return _node("tail", *(_run(f"t{i}", 90_000) for i in range(runs)))


def test_a_just_moved_run_is_not_the_cheapest_to_move():
    moved = _node("moved", _run("m", 600, moved_at=NOW - 600, resumed=True))  # no checkpoint since its move
    fresh = _node("fresh", _run("f", 3 * HOUR + 120))  # checkpointed 2 min ago
    assert at_risk_s(moved.runs[0], NOW) == 600 and at_risk_s(fresh.runs[0], NOW) == 120
    assert lost_node_seconds(moved, NOW, 60) > lost_node_seconds(fresh, NOW, 60)
    plan = plan_cluster(_cluster(moved, fresh, _tail(), target=2), NOW)
    assert plan.empty == "fresh" and [m.run for m in plan.moves] == ["f"]
    assert plan.moves[0].lost_s == 120 + 300  # since its checkpoint, plus its restart


def test_the_oldest_runs_stay_and_moved_runs_go_next_to_the_longest_running():
    old = _node("old", _run("o", 14 * HOUR))  # the oldest run, just checkpointed: the cheapest to move
    young = _node("young", _run("y", 1800))
    keep = _node("keep", *(_run(f"k{i}", 20_000) for i in range(3)))
    assert oldest_runs((old, young, keep), 4) == {"o", "k0", "k1", "k2"}
    assert lost_node_seconds(old, NOW, 60) < lost_node_seconds(young, NOW, 60)
    plan = plan_cluster(_cluster(old, young, keep, target=2), NOW)
    assert plan.surplus == ("young",) and plan.empty == "young"
    assert plan.moves[0].to == "old"  # next to the longest-running run, not onto `keep`


def test_a_run_with_a_fresh_checkpoint_is_preferred():
    stale = _node("stale", _run("s", 5 * HOUR, last_checkpoint_at=NOW - 3000))
    fresh = _node("fresh", _run("f", 5 * HOUR, last_checkpoint_at=NOW - 60))
    assert at_risk_s(fresh.runs[0], NOW) == 60 and at_risk_s(stale.runs[0], NOW) == 3000
    plan = plan_cluster(_cluster(stale, fresh, _tail(), target=2), NOW)
    assert plan.empty == "fresh"
    # a reported checkpoint older than the attempt says nothing of it: the declared interval does
    again = _run("a", 1800, last_checkpoint_at=NOW - 7200)
    assert at_risk_s(again, NOW) == 1800


def test_checkpoint_on_term_loses_only_the_restart_cost():
    run = _run("r", 10 * HOUR + 1800, checkpoint_on_term=True, slots=2)
    assert at_risk_s(run, NOW) == 0 and run_lost_s(run, NOW) == 2 * 300
    node = _node("n", run)
    plan = plan_cluster(_cluster(node, _tail(2), target=1), NOW)
    assert plan.empty == "n" and plan.moves[0].lost_s == 300 and plan.lost_s == 600 / 4


def test_nothing_known_costs_the_whole_attempt_and_a_resumed_attempt_starts_after_its_restart():
    assert at_risk_s(RunOnNode("u", NOW - 5000), NOW) == 5000
    # resumed: progress starts 300 s in; its first checkpoint comes an hour of progress later
    assert at_risk_s(_run("r", HOUR + 200, resumed=True), NOW) == HOUR + 200
    assert at_risk_s(_run("r", HOUR + 400, resumed=True), NOW) == 100
    assert at_risk_s(_run("z", 5000, checkpoint_interval_s=0.0), NOW) == 0


def test_every_move_says_what_it_expects_to_lose_and_save():
    node = _node("n", _run("r", 3 * HOUR + 600))
    plan = plan_cluster(_cluster(node, _tail(3), target=1), NOW)
    text = explain_move(plan.moves[0], plan)
    assert "expects to lose 900 s of work" in text and "node-h" in text and "from n to tail" in text
    assert explain_plan(plan).startswith("expects to lose 0.06 node-h")


def test_a_run_past_its_median_is_not_taken_for_one_about_to_end():
    node = WarnedNode("n", warning_at=NOW + 600, runs=(RunAtWarning("median", 1, NOW - 100, estimated=True),
                                                      RunAtWarning("own", 1, NOW - 100)))
    assert [r.gid for r in runs_outliving(node, NOW)] == ["median"]
    assert runs_outliving(node) == ()  # without `now`, as before
