"""Why each node of a cluster is surplus or kept, in words for status (pure).

The plan (`plan_consolidation`) says which nodes are surplus and, for the whole cluster, why
no run moves (`ClusterPlan.refusal`: the cheapest candidate's reason). A user looking at one
node asks "why is this one still here?": `explain_nodes` answers per node from the same
snapshot and plan, with the same rules, so the words never disagree with what is done.
"""

from __future__ import annotations

from dataclasses import dataclass

from juqueue.policy.consolidation_cost import node_refusal
from juqueue.policy.consolidation_model import (ClusterPlan, ClusterSnapshot, ConsolidationMode, Move, NodePhase,
                                                NodeSnapshot, Refusal)

__all__ = ["NodeVerdict", "explain_nodes", "explain_move", "explain_plan"]


@dataclass(frozen=True)
class NodeVerdict:
    surplus: bool  # above the target (placed on last; released or emptied when it may be)
    reason: str  # why it is surplus and still here, or why it is kept


def explain_nodes(cluster: ClusterSnapshot, plan: ClusterPlan, now: float) -> dict[str, NodeVerdict]:
    """Per node of the cluster: surplus or kept, and why."""
    surplus = set(plan.surplus)
    accepting = sum(1 for n in cluster.nodes if n.state is NodePhase.ACCEPTING and not n.protected)
    out: dict[str, NodeVerdict] = {}
    for node in cluster.nodes:
        if node.name in surplus:
            out[node.name] = NodeVerdict(True, _surplus_reason(node, cluster, plan, now))
        else:
            out[node.name] = NodeVerdict(False, _kept_reason(node, plan.target, accepting))
    return out


def _kept_reason(node: NodeSnapshot, target: int, accepting: int) -> str:
    if node.state is NodePhase.DRAINING:
        return "draining: takes no new runs, not counted against the target; goes once its runs end"
    if node.state is NodePhase.STOPPING:
        return "stopping"
    if node.protected:
        return "a replacement before its predecessor's wall-time warning: protected, not counted against the target"
    return f"within the target: the demand needs {target} node(s); {accepting} take runs"


def _surplus_reason(node: NodeSnapshot, cluster: ClusterSnapshot, plan: ClusterPlan, now: float) -> str:
    settings = cluster.settings
    if settings.mode is ConsolidationMode.IDLE:
        if node.is_empty:
            return "empty: released once idle for idle_timeout (consolidation: idle)"
        return "consolidation: idle never moves runs; released once empty and idle for idle_timeout"
    if node.name in plan.release or node.is_empty:
        return "empty: released now"
    if node.name == plan.empty:
        return f"to be emptied: its runs move once the plan holds at the next tick ({explain_plan(plan)})"
    if node.reserved_slots:
        return "holds slots promised to moved runs or exits awaiting a heartbeat: left to empty as its runs end"
    if cluster.emptying is not None:
        return f"waits: {cluster.emptying} is being emptied (one node per cluster at a time)"
    if plan.refusal is Refusal.TOO_SOON:
        return f"{plan.refusal.value}: {plan.detail}"
    why = node_refusal(node, settings, now, cluster.median_of)
    if why is not None:
        return f"{why[0].value}: {why[1]}"
    if plan.empty is not None:
        return f"waits: {plan.empty} is emptied first"
    if plan.refusal is not None and plan.detail.startswith(f"{node.name}:"):
        return f"{plan.refusal.value}: {plan.detail}"
    return f"{Refusal.NO_ROOM.value}: its runs fit on no remaining node"


def explain_plan(plan: ClusterPlan) -> str:
    """What emptying the plan's node is expected to cost and save, in node-hours."""
    return (f"expects to lose {plan.lost_s / 3600:.2f} node-h of work (since the last checkpoints, plus restarts) "
            f"and to save {plan.saved_s / 3600:.2f} node-h")


def explain_move(move: Move, plan: ClusterPlan) -> str:
    """One move, for its `moved` event: where, the work the run is expected to lose, what its
    node's emptying is expected to save."""
    return (f"from {move.source} to {move.to}: expects to lose {move.lost_s:.0f} s of work (since its last checkpoint, "
            f"plus its restart cost); emptying {move.source} expects to save {plan.saved_s / 3600:.2f} node-h")
