"""Consolidation: keep a cluster at its target node count by releasing and emptying the
surplus nodes, without ever losing more work than the release saves.

Pure: `plan_consolidation(snapshot, now)` over plain data (consolidation_model), called by
the controller on each event batch and tick (then again right before acting, to compare)
and by the simulator, after placement (so a surplus node that a ready run needs gets it
first). The rules, per cluster:

- Surplus: the accepting nodes above the target. Chosen cheapest to empty first: pending
  (bills nothing) and empty nodes, then nodes that may be emptied now by lowest lost work
  (those holding one of the cluster's oldest runs after the others), then the rest. Placement puts runs on them last (attrition) and scale-out starts nothing
  while one has a free slot (scaling.nodes_to_start).
- Replacements (policy.replacement) are left out while protected: not counted against the
  target, never surplus.
- Release: an empty surplus node is stopped at once, a pending one (cancel) first.
  `idle` mode releases nothing here and never moves a run: its empty nodes time out
  through scaling.idle_nodes_to_stop.
- Empty: at most one node per cluster at a time (`ClusterSnapshot.emptying` blocks a new
  one), not within `consolidate_after` of a node start, and only once the surplus lasted
  `consolidate_after`. The lowest-cost surplus node that holds no `movable: false` run, no
  run inside its `move_cooldown`, and whose move loses no more than it saves
  (consolidation_cost: work since the last checkpoint plus the restart cost), holding none
  of the cluster's oldest runs if there is one (one node's worth stays: the likely tail;
  their nodes are surplus last), and whose every run
  gets a slot reserved at once on a started, accepting, non-surplus node that has enough
  wall time for its expected duration: the one holding the longest-running runs, then the
  one with the most wall time left. Moves never need a node started.
- Explained: while a surplus node holds runs and none moves, `refusal` says why (the
  cheapest candidate's reason).

The surplus is found without ranking every node (consolidation_rank): same answer, at the cost
of the nodes near the front.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from juqueue.policy.consolidation_cost import (NO_MEDIANS, at_risk_s, destination_need_s, lost_node_seconds, node_refusal,
                                               oldest_of_firsts, saved_node_seconds)
from juqueue.policy.consolidation_model import (ClusterPlan, ClusterSettings, ClusterSnapshot, ConsolidationMode,
                                                Move, NodePhase, NodeSnapshot, Plan, Refusal, RunOnNode, Snapshot)
from juqueue.policy.consolidation_rank import cheapest_surplus

__all__ = ["plan_consolidation", "plan_cluster", "apply_plan", "surplus_rank"]


def plan_consolidation(snapshot: Snapshot, now: float) -> Plan:
    return Plan(tuple(plan_cluster(cluster, now) for cluster in snapshot.clusters))


def surplus_rank(node: NodeSnapshot, settings: ClusterSettings, now: float, oldest: frozenset[str] = frozenset(),
                 medians: Mapping[str, float | None] = NO_MEDIANS) -> tuple[int, float, float, str]:
    """Order in which accepting nodes become surplus: cheapest to get rid of first, a node
    holding one of the cluster's `oldest` runs after the other movable ones (it stays, and
    takes moved runs), nodes that cannot be emptied now last. Ties
    go to the node with less wall time left (it would end sooner anyway), then by name."""
    if node.is_empty:
        tier = 0 if node.pending else 1
    elif node.reserved_slots == 0 and node_refusal(node, settings, now, medians) is None:
        tier = 3 if any(r.gid in oldest for r in node.runs) else 2
    else:
        tier = 4  # runs moving in, or a run that may not move now: let attrition empty it
    return tier, lost_node_seconds(node, now, settings.consolidate_after_s), node.time_left_s(now), node.name


def plan_cluster(cluster: ClusterSnapshot, now: float) -> ClusterPlan:
    settings = cluster.settings
    target = max(0, min(cluster.target, settings.max_jobs))
    # A protected replacement stands in for a node about to drain: it does not count against
    # the target and is never surplus, but takes moved runs like any kept node.
    accepting: list[NodeSnapshot] = []
    replacements: list[NodeSnapshot] = []
    firsts = []  # (first run, position, node) of nodes with runs: for oldest_runs
    last_at: float | None = None  # the last node start, for _too_soon
    for i, n in enumerate(cluster.nodes):  # one pass: a plan may look at 1,000 nodes
        if n.state is NodePhase.ACCEPTING:
            (replacements if n.protected else accepting).append(n)
        if n.runs:
            firsts.append((n.first_run, i, n))
        if n.started_at is not None and (last_at is None or n.started_at > last_at):
            last_at = n.started_at
    excess = len(accepting) - target
    if excess <= 0:
        return ClusterPlan(cluster.name, target)
    since = cluster.surplus_since if cluster.surplus_since is not None else now
    oldest = oldest_of_firsts(firsts, settings.num_slots)
    medians = cluster.median_of
    surplus = cheapest_surplus(accepting, excess, lambda n: surplus_rank(n, settings, now, oldest, medians),
                               settings.consolidate_after_s, now)
    chosen = {id(n) for n in surplus}
    keep = [n for n in accepting if id(n) not in chosen] + replacements
    plan = ClusterPlan(cluster.name, target, surplus=tuple(n.name for n in surplus), surplus_since=since)
    if settings.mode is ConsolidationMode.IDLE:
        return plan
    plan = replace(plan, release=tuple(n.name for n in surplus if n.is_empty))
    candidates = [n for n in surplus if n.runs and n.reserved_slots == 0]
    if not candidates or cluster.emptying is not None:
        return plan  # nothing to move, or a move is under way: not a refusal
    too_soon = _too_soon(cluster, since, now, last_at)
    if too_soon:
        return replace(plan, refusal=Refusal.TOO_SOON, detail=too_soon)
    destinations = [n for n in keep if n.started_at is not None and n.free_slots > 0]
    refusals: list[tuple[Refusal, str]] = []
    def order(n: NodeSnapshot) -> tuple:  # lowest cost first, nodes holding the oldest runs last
        return (any(r.gid in oldest for r in n.runs),) + surplus_rank(n, settings, now, medians=medians)[1:]

    for node in sorted(candidates, key=order):
        why = node_refusal(node, settings, now, medians)
        if why is None:
            moves, why = _reserve(node, destinations, now, medians)
            if why is None:
                return replace(plan, empty=node.name, moves=moves,
                               lost_s=lost_node_seconds(node, now, settings.consolidate_after_s),
                               saved_s=saved_node_seconds(node, now, settings.grace_period_s, medians))
        refusals.append(why)
    refusal, detail = refusals[0]
    return replace(plan, refusal=refusal, detail=detail)


def _too_soon(cluster: ClusterSnapshot, since: float, now: float, last_at: float | None) -> str:
    """Why moves must wait: a node started recently, or the surplus is new. A surplus that
    appears right after a scale-out is usually a blip of demand. (A pending node never
    blocks: pending nodes are surplus before any node with runs, and released.)"""
    after = cluster.settings.consolidate_after_s
    if last_at is not None and now - last_at < after:
        last = max(n.name for n in cluster.nodes if n.started_at == last_at)
        return f"node {last} started {now - last_at:.0f} s ago (consolidate_after {after:.0f} s)"
    if now - since < after:
        return f"surplus for {now - since:.0f} s (consolidate_after {after:.0f} s)"
    return ""


def _reserve(node: NodeSnapshot, destinations: list[NodeSnapshot], now: float,
             medians: Mapping[str, float | None]) -> tuple[tuple[Move, ...], tuple[Refusal, str] | None]:
    """A free slot for every run of `node`, or none at all: a move that does not land at
    once would leave the run queued, maybe waiting for a node start. Big and long runs first,
    each next to the longest-running runs that leave it room (the nodes that stay longest
    fill up; the others empty sooner), then on the node with the most wall time left."""
    free = {d.name: d.free_slots for d in destinations}
    since = {d.name: d.first_run[0] if d.first_run is not None else float("inf") for d in destinations}
    moves: list[Move] = []
    for run in sorted(node.runs, key=lambda r: (-r.slots, -destination_need_s(r, now, medians), r.gid)):
        need = destination_need_s(run, now, medians)
        fits = [d for d in destinations if free[d.name] >= run.slots and d.time_left_s(now) > 0
                and d.time_left_s(now) >= need]
        if not fits:
            return (), (Refusal.NO_ROOM, f"{node.name}: run {run.gid} ({run.slots} slot(s), needs {need:.0f} s) "
                                         "fits on no remaining node")
        dest = min(fits, key=lambda d: (since[d.name], -d.time_left_s(now), free[d.name], d.name))
        free[dest.name] -= run.slots
        moves.append(Move(run.gid, node.name, dest.name, run.slots, at_risk_s(run, now) + run.restart_cost_s))
    return tuple(moves), None


def apply_plan(cluster: ClusterSnapshot, plan: ClusterPlan, now: float) -> ClusterSnapshot:
    """The cluster once the plan is carried out and its moves are over: released and emptied
    nodes gone, each moved run on its destination with a new attempt. For the simulator and
    tests; the controller gets there through its own events."""
    gone = set(plan.release) | ({plan.empty} if plan.empty else set())
    runs = {r.gid: r for n in cluster.nodes for r in n.runs}
    arriving: dict[str, list[RunOnNode]] = {}
    for move in plan.moves:
        arriving.setdefault(move.to, []).append(replace(runs[move.run], attempt_started_at=now, moved_at=now))
    nodes = tuple(replace(n, runs=n.runs + tuple(arriving.get(n.name, ()))) for n in cluster.nodes if n.name not in gone)
    return replace(cluster, nodes=nodes, surplus_since=plan.surplus_since, emptying=None)
