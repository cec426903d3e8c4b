"""Pure consolidation policy: targets per scaling policy, expected durations, and the
consolidation plan (what is surplus, what is released, which node is emptied where)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from juqueue.policy.consolidation import apply_plan, plan_cluster, plan_consolidation
from juqueue.policy.consolidation_model import (ClusterPlan, ClusterSettings, ClusterSnapshot, ConsolidationMode,
                                                NodePhase, NodeSnapshot, Refusal, RunOnNode, Snapshot)
from juqueue.policy.duration import expected_duration, parse_duration
from juqueue.policy.scaling import ClusterLoad, ScalingPolicy, nodes_to_start, target_nodes

NOW = 100_000.0
POLICIES = list(ScalingPolicy)


# ------------------------------------------------------------------ strategies
def _seconds(low: int, high: int) -> st.SearchStrategy[float]:
    return st.integers(low, high).map(float)


@st.composite
def _ago(draw: st.DrawFn) -> float:
    """A past instant: mostly longer ago than any consolidate_after drawn (<= 600 s)."""
    recent = draw(st.integers(0, 19)) == 7
    return NOW - draw(_seconds(0, 600) if recent else _seconds(601, 50_000))


@st.composite
def _runs(draw: st.DrawFn, node: int, capacity: int) -> tuple[RunOnNode, ...]:
    runs: list[RunOnNode] = []
    left = draw(st.integers(0, capacity))
    while left > 0:
        slots = draw(st.integers(1, min(2, left)))
        left -= slots
        runs.append(RunOnNode(
            gid=f"n{node}r{len(runs)}", attempt_started_at=NOW - draw(_seconds(0, 10_000)), slots=slots,
            movable=draw(st.integers(0, 5)) > 0,
            moved_at=draw(st.none() | _seconds(0, 5_000).map(lambda d: NOW - d)),
            expected_duration_s=draw(st.none() | _seconds(1, 20_000)),
        ))
    return tuple(runs)


@st.composite
def clusters(draw: st.DrawFn, mode: ConsolidationMode | None = None, steady: bool = False) -> ClusterSnapshot:
    """Any cluster; `steady`: every node up and accepting, nothing reserved or in flight,
    and the target computed from the demand the runs make."""
    num_slots = draw(st.integers(1, 4))
    nodes = []
    for i in range(draw(st.integers(0, 6))):
        state = NodePhase.ACCEPTING if steady else draw(st.sampled_from([NodePhase.ACCEPTING] * 4 + list(NodePhase)))
        pending = not steady and draw(st.integers(0, 6)) == 0
        runs = () if pending else draw(_runs(i, num_slots))
        used = sum(r.slots for r in runs)
        reserved = 0 if steady or draw(st.integers(0, 5)) else draw(st.integers(0, num_slots - used))
        nodes.append(NodeSnapshot(
            name=f"n{i}", slots_total=num_slots, state=state, runs=runs, reserved_slots=reserved,
            started_at=None if pending else draw(_ago()),
            time_limit_at=None if draw(st.integers(0, 2)) else NOW + draw(_seconds(1, 20_000)),
            protected=not steady and draw(st.integers(0, 7)) == 0,  # a replacement job (policy.replacement)
        ))
    cfg = ClusterSettings(
        num_slots=num_slots, max_jobs=draw(st.integers(0, 8)),
        mode=mode or draw(st.sampled_from([ConsolidationMode.AGGRESSIVE] * 3 + [ConsolidationMode.IDLE])),
        consolidate_after_s=draw(_seconds(0, 600)), move_cooldown_s=draw(_seconds(1, 3_600)),
        grace_period_s=draw(_seconds(0, 60)),
    )
    if steady:
        demand = sum(r.slots for n in nodes for r in n.runs)
        cfg = replace(cfg, max_jobs=max(cfg.max_jobs, len(nodes)))
        target = target_nodes(demand, num_slots, cfg.max_jobs, draw(st.sampled_from(POLICIES)),
                              draw(st.floats(0.0, 1.0)))
        return ClusterSnapshot("c", cfg, target, tuple(nodes), surplus_since=NOW - 10_000)
    return ClusterSnapshot(
        "c", cfg, draw(st.integers(0, len(nodes))), tuple(nodes),
        surplus_since=None if draw(st.integers(0, 4)) == 3 else draw(_ago()),
        emptying=draw(st.sampled_from([None, None, None, "n0"])),
    )


# ------------------------------------------------------------------ independent arithmetic
def _lost(node: NodeSnapshot, cfg: ClusterSettings) -> float:
    if node.time_limit_at is not None and node.time_limit_at - NOW <= cfg.consolidate_after_s:
        return 0.0
    return sum(r.slots * max(0.0, NOW - r.attempt_started_at) for r in node.runs) / node.slots_total


def _saved(node: NodeSnapshot, cfg: ClusterSettings) -> float:
    def remaining(r: RunOnNode) -> float:
        done = max(0.0, NOW - r.attempt_started_at)
        known = r.expected_duration_s is not None and done < r.expected_duration_s
        return r.expected_duration_s - done if known else done  # type: ignore[operator]

    saved = max(remaining(r) for r in node.runs) - cfg.grace_period_s
    if node.time_limit_at is not None:
        saved = min(saved, node.time_limit_at - NOW)
    return max(0.0, saved)


def _check_plan(cluster: ClusterSnapshot, plan: ClusterPlan, now: float = NOW) -> None:
    cfg = cluster.settings
    by_name = {n.name: n for n in cluster.nodes}
    accepting = [n for n in cluster.nodes if n.state is NodePhase.ACCEPTING and not n.protected]
    assert plan.target <= cfg.max_jobs
    # A protected replacement neither counts against the target nor is ever surplus.
    assert len(plan.surplus) == max(0, len(accepting) - plan.target)
    assert set(plan.surplus) <= {n.name for n in accepting}
    assert plan.empty is None or not by_name[plan.empty].protected
    for name in plan.release:
        assert name in plan.surplus and by_name[name].is_empty
    if cfg.mode is ConsolidationMode.IDLE:
        assert not plan.moves and plan.empty is None and not plan.release
    if not plan.moves:
        assert plan.empty is None
        return
    # Moves: the one emptied node is surplus, every run on it gets a slot, nothing else moves.
    assert cluster.emptying is None
    source = by_name[plan.empty]  # type: ignore[index]
    assert source.name in plan.surplus
    assert sorted(m.run for m in plan.moves) == sorted(r.gid for r in source.runs)
    runs = {r.gid: r for r in source.runs}
    used: dict[str, int] = {}
    for move in plan.moves:
        run = runs[move.run]
        assert run.movable
        assert run.moved_at is None or now - run.moved_at >= cfg.move_cooldown_s
        dest = by_name[move.to]
        assert dest.state is NodePhase.ACCEPTING and not dest.pending  # an existing node: no start
        assert dest.name not in plan.surplus and dest.name != source.name
        assert move.slots == run.slots
        if run.expected_duration_s is not None:
            assert dest.time_left_s(now) >= run.expected_duration_s
        used[dest.name] = used.get(dest.name, 0) + run.slots
    for name, slots in used.items():
        assert slots <= by_name[name].free_slots
    # Never loses more than it saves; the gates held.
    assert _lost(source, cfg) <= _saved(source, cfg) + 1e-9
    # surplus since this instant when not before: only `consolidate_after: 0` acts at once
    since = cluster.surplus_since if cluster.surplus_since is not None else now
    assert now - since >= cfg.consolidate_after_s
    assert all(now - n.started_at >= cfg.consolidate_after_s for n in cluster.nodes if n.started_at is not None)
    assert plan.refusal is None


# ------------------------------------------------------------------ properties
@given(st.integers(0, 200), st.integers(1, 16), st.integers(0, 20), st.sampled_from(POLICIES), st.floats(0.0, 1.0))
def test_target_is_within_max_jobs_and_a_small_demand_gets_a_node(demand, num_slots, max_jobs, policy, saturation):
    n = target_nodes(demand, num_slots, max_jobs, policy, saturation)
    assert 0 <= n <= max_jobs
    if demand == 0:
        assert n == 0
    elif max_jobs >= 1:
        assert n >= 1
    low = target_nodes(demand, num_slots, max_jobs, ScalingPolicy.MINIMIZE_JOBS)
    high = target_nodes(demand, num_slots, max_jobs, ScalingPolicy.MAXIMIZE_RUNNING)
    assert low <= n <= high


@given(st.integers(0, 100), st.integers(1, 8), st.integers(0, 10), st.integers(0, 10), st.integers(0, 10),
       st.integers(0, 3), st.sampled_from(POLICIES))
def test_scale_out_never_passes_the_target_nor_max_jobs(ready, num_slots, max_jobs, accepting, draining, surplus_free, policy):
    accepting = min(accepting, max_jobs)
    live = min(max_jobs, accepting + draining)
    target = target_nodes(ready, num_slots, max_jobs, policy)
    load = ClusterLoad(ready, num_slots, max_jobs, 0, live, accepting_nodes=accepting, surplus_free_slots=surplus_free)
    n = nodes_to_start(load, target=target)
    assert 0 <= n <= max_jobs - live
    assert accepting + n <= max(accepting, target)
    if surplus_free:
        assert n == 0  # never start while a surplus node has a free slot


@settings(max_examples=500, deadline=None)
@given(st.one_of(clusters(), clusters(steady=True)))
def test_plan_invariants(cluster):
    _check_plan(cluster, plan_cluster(cluster, NOW))


@given(clusters(mode=ConsolidationMode.IDLE))
def test_idle_never_moves_a_run(cluster):
    plan = plan_cluster(cluster, NOW)
    assert plan.moves == () and plan.empty is None and plan.release == ()


@settings(max_examples=200, deadline=None)
@given(clusters(mode=ConsolidationMode.AGGRESSIVE, steady=True), st.integers(0, 3_000))
def test_steady_load_no_thrash(cluster, later):
    """Applying each plan and planning again: no run moves twice, no node that took moved
    runs is emptied, the node count stays at or above the target (so nothing has to start),
    and it stops within one plan per node; later plans inside the cooldown move nothing moved."""
    moved: set[str] = set()
    received: set[str] = set()
    for _ in range(len(cluster.nodes) + 1):
        plan = plan_cluster(cluster, NOW)
        _check_plan(cluster, plan)
        if not plan.moves and not plan.release:
            break
        assert plan.empty not in received
        assert not moved & {m.run for m in plan.moves}
        moved |= {m.run for m in plan.moves}
        received |= {m.to for m in plan.moves}
        cluster = apply_plan(cluster, plan, NOW)
        assert len(cluster.nodes) >= cluster.target
        load = ClusterLoad(0, cluster.settings.num_slots, cluster.settings.max_jobs, 0, len(cluster.nodes),
                           accepting_nodes=len(cluster.nodes))
        assert nodes_to_start(load, target=cluster.target) == 0
    else:
        pytest.fail("consolidation did not settle")
    assert plan_cluster(cluster, NOW).moves == ()
    if later < cluster.settings.move_cooldown_s:
        assert not moved & {m.run for m in plan_cluster(cluster, NOW + later).moves}


# ------------------------------------------------------------------ examples
def _node(name: str, *runs: RunOnNode, slots: int = 4, started: float = NOW - 7_200, **kw) -> NodeSnapshot:
    return NodeSnapshot(name, slots, started_at=started, runs=runs, **kw)


def _cluster(*nodes: NodeSnapshot, target: int = 1, **kw) -> ClusterSnapshot:
    cfg = ClusterSettings(num_slots=4, max_jobs=8, **kw)
    return ClusterSnapshot("c", cfg, target, nodes, surplus_since=NOW - 600)


def test_seed_example_four_nodes_with_one_long_run_each_end_on_one():
    nodes = [_node(f"n{i}", RunOnNode(f"r{i}", NOW - 3_600)) for i in range(4)]
    cluster = _cluster(*nodes, target=target_nodes(4, 4, 8))
    moved: list[str] = []
    for left in (3, 2, 1):
        plan = plan_consolidation(Snapshot((cluster,)), NOW).cluster("c")
        assert plan.empty is not None and len(plan.moves) == 1
        assert plan.moves[0].to in {n.name for n in cluster.nodes} - {plan.empty}
        moved.append(plan.moves[0].run)
        cluster = apply_plan(cluster, plan, NOW)
        assert len(cluster.nodes) == left
    assert plan_cluster(cluster, NOW).moves == ()
    assert len(set(moved)) == 3 and len(cluster.nodes[0].runs) == 4


@pytest.mark.parametrize("policy, saturation, expected", [
    (ScalingPolicy.MAXIMIZE_RUNNING, 0.0, (1, 1, 2)),
    (ScalingPolicy.MINIMIZE_JOBS, 0.0, (1, 1, 1)),
    (ScalingPolicy.MIN_SATURATION, 0.5, (1, 1, 1)),
    (ScalingPolicy.MIN_SATURATION, 0.2, (1, 1, 2)),
])
def test_each_policy_starts_what_it_says_for_1_n_minus_1_n_plus_1_runs(policy, saturation, expected):
    num_slots = 4
    for ready, want in zip((1, num_slots - 1, num_slots + 1), expected):
        target = target_nodes(ready, num_slots, 8, policy, saturation)
        assert target == want
        load = ClusterLoad(ready, num_slots, 8, 0, 0, accepting_nodes=0)
        assert nodes_to_start(load, target=target) == want


def test_bad_scaling_values_are_clear_errors():
    with pytest.raises(ValueError, match="fewest"):
        target_nodes(1, 4, 2, "fewest")
    with pytest.raises(ValueError, match="1.5"):
        target_nodes(1, 4, 2, ScalingPolicy.MIN_SATURATION, 1.5)


def test_node_with_a_run_in_cooldown_is_not_chosen():
    fresh = _node("a", RunOnNode("a1", NOW - 100, moved_at=NOW - 100))
    old = _node("b", RunOnNode("b1", NOW - 3_000))
    # the cluster's oldest runs (one node's worth, full) stay on a node of their own
    tail = _node("o", *(RunOnNode(f"o{i}", NOW - 90_000) for i in range(4)))
    plan = plan_cluster(_cluster(fresh, old, tail, target=2), NOW)
    assert plan.surplus == ("b",) and plan.empty == "b" and plan.moves[0].to == "a"
    # both blocked: the cheaper one is surplus and the refusal says why
    pinned = _node("b", RunOnNode("b1", NOW - 3_000, movable=False))
    plan = plan_cluster(_cluster(fresh, pinned), NOW)
    assert plan.surplus == ("a",) and plan.moves == () and plan.refusal is Refusal.COOLDOWN


def test_empty_surplus_node_is_released_at_once_pending_first():
    busy = _node("a", RunOnNode("a1", NOW - 10))
    idle = _node("b", started=NOW - 1)
    queued = NodeSnapshot("c", 4)  # a pending SLURM job: cancelled first
    cluster = replace(_cluster(busy, idle, queued), surplus_since=None)
    plan = plan_cluster(cluster, NOW)
    assert plan.release == ("c", "b") and plan.surplus_since == NOW and plan.refusal is None


def test_refusals_name_their_reason():
    keep = _node("k", RunOnNode("k1", NOW - 9_000, movable=False))
    crowded = _node("s", *(RunOnNode(f"s{i}", NOW - 1_000) for i in range(4)))
    assert plan_cluster(_cluster(keep, crowded), NOW).refusal is Refusal.LOSES_MORE  # 1000 lost vs 970 saved
    ending = _node("s", RunOnNode("s1", NOW - 1_000, expected_duration_s=1_100))
    assert plan_cluster(_cluster(keep, ending), NOW).refusal is Refusal.WAITING_FOR_RUNS
    full = _node("k", *(RunOnNode(f"k{i}", NOW - 9_000, movable=False) for i in range(4)))
    lone = _node("s", RunOnNode("s1", NOW - 100))
    assert plan_cluster(_cluster(full, lone), NOW).refusal is Refusal.NO_ROOM
    young = _node("s", RunOnNode("s1", NOW - 100), started=NOW - 10)
    assert plan_cluster(_cluster(keep, young), NOW).refusal is Refusal.TOO_SOON
    new_surplus = replace(_cluster(keep, lone), surplus_since=NOW - 5)
    plan = plan_cluster(new_surplus, NOW)
    assert plan.refusal is Refusal.TOO_SOON and plan.refusal.value == "consolidate_after not reached"


def test_one_node_at_a_time_and_wall_time_makes_a_node_free_to_empty():
    nodes = (_node("a", RunOnNode("a1", NOW - 500)), _node("b", RunOnNode("b1", NOW - 9_000), time_limit_at=NOW + 30),
             _node("c", RunOnNode("c1", NOW - 800)))
    plan = plan_cluster(_cluster(*nodes), NOW)
    assert plan.empty == "b" and plan.lost_s == 0  # its wall time comes within consolidate_after
    assert plan_cluster(replace(_cluster(*nodes), emptying="x"), NOW).moves == ()


def test_destination_has_the_most_wall_time_left_and_enough_for_the_run():
    run = RunOnNode("s1", NOW - 100, expected_duration_s=5_000)
    src = _node("s", run)
    short = _node("x", RunOnNode("x1", NOW - 9_000, movable=False), time_limit_at=NOW + 4_000)
    longer = _node("y", RunOnNode("y1", NOW - 9_000, movable=False), time_limit_at=NOW + 8_000)
    plan = plan_cluster(_cluster(src, short, longer, target=2), NOW)
    assert [m.to for m in plan.moves] == ["y"]
    plan = plan_cluster(_cluster(src, short, target=1), NOW)
    assert plan.refusal is Refusal.NO_ROOM  # 4000 s left is not enough for 5000 s


# ------------------------------------------------------------------ durations
@pytest.mark.parametrize("value, seconds", [
    (0, 0.0), (90, 90.0), (1.5, 1.5), ("01:02:03", 3723.0), ("2:30", 150.0), ("90:00", 5400.0), ("0:00:01.5", 1.5),
])
def test_parse_duration(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", [-1, "1:75:00", "1:2:3:4", "soon", "", True, None, float("nan"), [60]])
def test_parse_duration_errors_name_the_value(value):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


def test_expected_duration():
    assert expected_duration(120.0, [1, 2, 3]) == 120.0
    assert expected_duration(None, [10, 30]) is None
    assert expected_duration(None, [10, 30, 1_000]) == 30.0
    assert expected_duration(None, [10, 20, 30, 40]) == 25.0
