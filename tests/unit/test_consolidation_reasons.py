"""Per-node words on why a node is surplus or kept (policy.consolidation_reasons), against the
plan they explain: every node gets one verdict, surplus exactly when the plan says so."""

from __future__ import annotations

from hypothesis import given, settings

from juqueue.policy.consolidation import plan_cluster
from juqueue.policy.consolidation_model import (ClusterSettings, ClusterSnapshot, ConsolidationMode, NodePhase,
                                                NodeSnapshot, RunOnNode)
from juqueue.policy.consolidation_reasons import explain_nodes
from test_consolidation_policy import clusters

NOW = 100_000.0
SETTINGS = ClusterSettings(num_slots=4, max_jobs=4, consolidate_after_s=60, move_cooldown_s=1800, grace_period_s=30)


def _node(name: str, *runs: RunOnNode, state: NodePhase = NodePhase.ACCEPTING, **kw: object) -> NodeSnapshot:
    return NodeSnapshot(name, 4, state, started_at=NOW - 10_000, runs=runs, **kw)  # type: ignore[arg-type]


def _run(gid: str, started_ago: float, **kw: object) -> RunOnNode:
    return RunOnNode(gid, NOW - started_ago, **kw)  # type: ignore[arg-type]


def _explain(cluster: ClusterSnapshot) -> dict[str, tuple[bool, str]]:
    plan = plan_cluster(cluster, NOW)
    return {name: (v.surplus, v.reason) for name, v in explain_nodes(cluster, plan, NOW).items()}


def test_kept_nodes_say_within_target_draining_or_protected():
    cluster = ClusterSnapshot("c", SETTINGS, target=1, nodes=(
        _node("a", _run("a1", 100)), _node("d", _run("d1", 100), state=NodePhase.DRAINING),
        _node("p", protected=True), _node("s", state=NodePhase.STOPPING)))
    out = _explain(cluster)
    assert out["a"] == (False, "within the target: the demand needs 1 node(s); 1 take runs")
    assert out["d"][0] is False and out["d"][1].startswith("draining")
    assert out["p"][0] is False and "protected" in out["p"][1]
    assert out["s"] == (False, "stopping")


def test_surplus_nodes_say_why_they_stay():
    cluster = ClusterSnapshot("c", SETTINGS, target=1, nodes=(
        _node("k", _run("k1", 60_000)), _node("m", _run("m1", 90_000, movable=False)), _node("l", _run("l1", 50_000)),
        _node("e")),
        surplus_since=NOW - 1_000)
    out = _explain(cluster)
    assert out["e"] == (True, "empty: released now")
    assert out["l"][0] and out["l"][1].startswith("to be emptied: its runs move once the plan holds")
    assert out["k"] == (True, "waits: l is emptied first")
    assert out["m"][0] is False and out["m"][1].startswith("within the target")
    pinned = ClusterSnapshot("c", SETTINGS, target=1, nodes=(
        _node("k", _run("k1", 60_000, movable=False)), _node("m", _run("m1", 5_000, movable=False))),
        surplus_since=NOW - 1_000)
    out = _explain(pinned)
    assert out["m"] == (True, "movable: false: m: run m1 is movable: false")
    assert out["k"][0] is False
    emptying = ClusterSnapshot("c", SETTINGS, target=1, nodes=cluster.nodes, surplus_since=NOW - 1_000, emptying="x")
    assert _explain(emptying)["k"] == (True, "waits: x is being emptied (one node per cluster at a time)")


def test_surplus_too_soon_and_idle_mode():
    cluster = ClusterSnapshot("c", SETTINGS, target=1, nodes=(_node("a", _run("a1", 10)), _node("b", _run("b1", 10))))
    out = _explain(cluster)  # the surplus is new
    (surplus,) = [reason for is_surplus, reason in out.values() if is_surplus]
    assert surplus.startswith("consolidate_after not reached")
    idle = ClusterSnapshot("c", ClusterSettings(4, 4, ConsolidationMode.IDLE), target=1,
                           nodes=(_node("a", _run("a1", 10)), _node("b")))
    out = _explain(idle)
    assert out["b"] == (True, "empty: released once idle for idle_timeout (consolidation: idle)")


@settings(max_examples=200, deadline=None)
@given(clusters())
def test_one_verdict_per_node_and_surplus_as_the_plan_says(cluster):
    plan = plan_cluster(cluster, NOW)
    verdicts = explain_nodes(cluster, plan, NOW)
    assert set(verdicts) == {n.name for n in cluster.nodes}
    assert {name for name, v in verdicts.items() if v.surplus} == set(plan.surplus)
    assert all(v.reason for v in verdicts.values())
