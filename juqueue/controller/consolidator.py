"""Consolidation carried out: the controller's view turned into the policy's snapshot, and
the plan it returns acted on (empty surplus nodes released, runs moved off one node at a time).

The decisions are `juqueue.policy.consolidation.plan_consolidation`'s; this module only
gathers, re-checks and acts. A move is two-phase and fenced like every stop: the reason
(`StopReason.MOVE`) and the destination are recorded, a slot is reserved on the destination,
the run gets SIGTERM and its grace period, and its next attempt goes to the reserved slot only
once the first is over. The emptied node takes no run meanwhile and is stopped once empty.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from juqueue.backends.base import NodeBackend
from juqueue.controller.actions import UserActions
from juqueue.controller.fleet import Fleet
from juqueue.controller.node_loss import NodeLoss
from juqueue.controller.state import ControllerState, NodeInfo, RunState
from juqueue.policy.consolidation import plan_consolidation
from juqueue.policy.consolidation_model import (ClusterPlan, ClusterSettings, ClusterSnapshot, ConsolidationMode,
                                                NodePhase, NodeSnapshot, Plan, RunOnNode, Snapshot)
from juqueue.policy.consolidation_reasons import NodeVerdict, explain_move, explain_nodes, explain_plan
from juqueue.policy.replacement import protected
from juqueue.policy.scaling import target_nodes
from juqueue.status import NodeState, StopReason

log = logging.getLogger(__name__)

EMPTYING_REASON = "emptying: its runs move to other nodes (consolidation)"
EMPTIED_DETAIL = "emptied (consolidation)"
_PHASE = {NodeState.PENDING: NodePhase.ACCEPTING, NodeState.STARTING: NodePhase.ACCEPTING,
          NodeState.UP: NodePhase.ACCEPTING, NodeState.DRAINING: NodePhase.DRAINING,
          NodeState.STOPPING: NodePhase.STOPPING}


@dataclass
class ClusterView:
    """What consolidation remembers per cluster between plans (and shows in status)."""

    target: int = 0
    surplus_since: float | None = None
    surplus_seen_at: float | None = None  # the last plan that saw a surplus
    emptying: str | None = None
    emptying_since: float | None = None
    moves: list[dict] = field(default_factory=list)
    refusal: str | None = None
    refusal_kind: str | None = None
    proposal: tuple | None = None  # the last plan's (node, moves): acted on once seen twice


class Consolidator:
    def __init__(self, state: ControllerState, fleet: Fleet, loss: NodeLoss, actions: UserActions,
                 backends: dict[str, NodeBackend]) -> None:
        self.s = state
        self.fleet = fleet
        self.loss = loss
        self.actions = actions
        self.backends = backends
        self.views: dict[str, ClusterView] = {}
        self._last: tuple[Snapshot, Plan, float] | None = None  # the last plan, explained per node on request

    def view(self, cluster: str) -> ClusterView:
        return self.views.setdefault(cluster, ClusterView())

    # ---------------------------------------------------------------- gather
    def demand_slots(self, cluster: str) -> int:
        """Slots of live runs plus ready runs; runs waiting on dependencies or held are not demand."""
        s = self.s
        live = sum(n.slots_used for n in s.nodes.values() if n.cluster == cluster)
        pending = sum(s.runs[g].slots if g in s.runs else 1
                      for n in s.nodes.values() if n.cluster == cluster for g in s.pending_exits.get(n.name, ()))
        return live + pending + s.queue.ready_slots(cluster) - s.device_starved_slots(cluster)

    def targets(self) -> dict[str, int]:
        out = {}
        for name, spec in self.s.config.clusters.items():
            out[name] = target_nodes(self.demand_slots(name), spec.num_slots, spec.max_jobs,
                                     spec.scaling_policy, spec.min_saturation)
            # Slots alone miss fragmentation: a k-slot run that fits no up node whole needs a
            # node of its own although the free slots add up. The target keeps the up nodes that
            # hold runs plus the nodes those runs need, so the node started for them is not
            # surplus (released at once, started again, ...).
            unfit = self.s.unfit_nodes(name, spec.num_slots, self.s.now(), up_only=True)
            if unfit:
                busy = sum(1 for n in self.s.nodes.values()
                           if n.cluster == name and n.state == NodeState.UP and (n.runs or self.s.reserved.get(n.name)))
                out[name] = min(spec.max_jobs, max(out[name], busy + unfit))
            self.view(name).target = out[name]
        return out

    def _run_on_node(self, run: RunState, now: float) -> RunOnNode:
        """The cost of a move counts from the checkpoint the run's worker reported for this
        attempt; without one it is inferred from the run's checkpoint_interval (its own, else
        its cluster's)."""
        interval, cost, on_term = run.checkpointing()
        spec = self.s.config.clusters.get(run.cluster)
        if spec is not None:
            interval = spec.checkpoint_interval if interval is None else interval
            cost = spec.restart_cost if cost is None else cost
            on_term = spec.checkpoint_on_term if on_term is None else on_term
        return RunOnNode(run.gid, self.s.attempt_started(run, now), movable=run.movable, moved_at=run.moved_at,
                         expected_duration_s=self.s.expected_run_s(run), slots=run.slots, last_checkpoint_at=run.checkpoint_at,
                         checkpoint_interval_s=interval, restart_cost_s=cost or 0.0, checkpoint_on_term=bool(on_term),
                         resumed=run.attempt > 1)

    def _node_snapshot(self, node: NodeInfo, now: float) -> NodeSnapshot:
        s = self.s
        runs = tuple(self._run_on_node(s.runs[g], now) for g in sorted(node.runs) if g in s.runs)
        # Exits waiting for the node's next heartbeat keep it from looking empty.
        held = s.reserved.get(node.name, 0) + sum(s.runs[g].slots if g in s.runs else 1
                                                  for g in s.pending_exits.get(node.name, ()))
        if node.device_probe and not node.no_devices:
            held += 1  # a node started to look for devices is not surplus before it looked
        phase = _PHASE.get(node.state, NodePhase.STOPPING)
        return NodeSnapshot(node.name, node.slots_total, phase, started_at=node.up_at, time_limit_at=s.warning_at(node),
                            runs=runs, reserved_slots=held, protected=protected(node.protected_until, now))

    def snapshot(self, now: float, targets: dict[str, int]) -> Snapshot:
        s = self.s
        clusters = []
        for name, spec in s.config.clusters.items():
            view = self.view(name)
            settings = ClusterSettings(spec.num_slots, spec.max_jobs, ConsolidationMode(spec.consolidation),
                                       spec.consolidate_after, spec.move_cooldown, spec.grace_period)
            nodes = tuple(self._node_snapshot(n, now) for n in s.nodes.values() if n.cluster == name)
            clusters.append(ClusterSnapshot(name, settings, targets[name], nodes, view.surplus_since, view.emptying))
        return Snapshot(tuple(clusters))

    def plan(self, now: float) -> Plan:
        """The plan for now; it also refreshes which nodes are surplus (placement uses them last)."""
        self._settle_emptying(now)
        snapshot = self.snapshot(now, self.targets())
        plan = plan_consolidation(snapshot, now)
        self._last = (snapshot, plan, now)
        self.s.surplus = set(plan.surplus)
        for cp in plan.clusters:
            view = self.view(cp.cluster)
            if cp.surplus_since is not None:
                view.surplus_since, view.surplus_seen_at = cp.surplus_since, now
            elif view.surplus_since is not None:
                # A release that clears the surplus for a moment does not restart the wait while
                # demand keeps falling: the surplus counts as one until it was gone consolidate_after.
                spec = self.s.config.clusters.get(cp.cluster)
                if spec is None or now - (view.surplus_seen_at or now) >= spec.consolidate_after:
                    view.surplus_since = view.surplus_seen_at = None
        return plan

    # ---------------------------------------------------------------- act
    def act(self, now: float, moves_allowed: bool) -> None:
        """Release empty surplus nodes at once; move runs (on ticks only, when the plan held
        since the previous tick: the re-check before acting)."""
        if self.s.stopping:
            return
        plan = self.plan(now)
        for cp in plan.clusters:
            self._note_refusal(cp)
            for name in cp.release:
                node = self.s.nodes.get(name)
                if node is not None and node.state.is_live:
                    self._release(node, now)
            if moves_allowed:
                self._maybe_move(cp, now)

    def _release(self, node: NodeInfo, now: float) -> None:
        backend = self.backends.get(node.backend)
        if node.up_at is None and node.state in (NodeState.PENDING, NodeState.STARTING) and backend is not None \
                and backend.loss_confirmed_by_scheduler:
            # A job still waiting in the scheduler's queue bills nothing: cancel it.
            log.info("consolidation: cancelling surplus job of %s before it starts", node.name)
            backend.stop_node(node.name, node.job_id, node.pid)
            self.loss.node_gone(node, "surplus: cancelled before it started", now)
            return
        log.info("consolidation: releasing empty surplus node %s", node.name)
        self.fleet.request_node_stop(node, StopReason.NODE_STOP, "surplus (consolidation)", now)

    def _maybe_move(self, cp: ClusterPlan, now: float) -> None:
        view = self.view(cp.cluster)
        proposal = (cp.empty, tuple((m.run, m.to) for m in cp.moves)) if cp.empty else None
        previous, view.proposal = view.proposal, proposal
        if proposal is None or proposal != previous:
            return
        view.proposal = None
        node = self.s.nodes[cp.empty]  # type: ignore[index]
        node.emptying = True
        node.state, node.reason = NodeState.DRAINING, EMPTYING_REASON
        self.s.mark_node_dirty(node)
        view.emptying, view.emptying_since = node.name, now
        view.moves = [{"run": m.run, "to": m.to} for m in cp.moves]
        log.info("consolidation: emptying %s (%s): %s", node.name, explain_plan(cp),
                 ", ".join(f"{m.run} -> {m.to}" for m in cp.moves))
        for move in cp.moves:
            run = self.s.runs[move.run]
            run.moved_at = now
            self.s.reserve(run, move.to)
            self.s.batch.event(run.gid, "moved", run.attempt, node.name, explain_move(move, cp), now)
            self.actions.stop_attempt(run, StopReason.MOVE, f"moved to {move.to} (consolidation)")
        self.s.dirty_placement = True

    def _settle_emptying(self, now: float) -> None:
        """An emptied node is stopped once its last run is gone; the cluster may empty the next
        node once that stop is confirmed (the node left memory)."""
        for name, view in self.views.items():
            if view.emptying is None:
                continue
            node = self.s.nodes.get(view.emptying)
            if node is None or not node.state.is_live:
                view.emptying, view.emptying_since, view.moves = None, None, []
                continue
            if node.emptying and node.state == NodeState.DRAINING and not node.runs \
                    and not self.s.pending_exits.get(node.name):
                self.fleet.request_node_stop(node, StopReason.NODE_STOP, EMPTIED_DETAIL, now)

    def _note_refusal(self, cp: ClusterPlan) -> None:
        view = self.view(cp.cluster)
        text = f"{cp.refusal.value}: {cp.detail}" if cp.refusal is not None else None
        kind = cp.refusal.value if cp.refusal is not None else None
        if kind != view.refusal_kind:  # logged when the reason changes, not its figures
            if text is not None:
                log.info("consolidation of %s waits: %s", cp.cluster, text)
            view.refusal_kind = kind
        view.refusal = text

    # ---------------------------------------------------------------- bookkeeping
    def adopt(self) -> None:
        """After a (re)start: nodes being emptied keep being emptied; reservations died with the
        old memory, so moved runs are queued normally when their attempt ends (said in the log)."""
        for node in self.s.nodes.values():
            if node.up_at is None and node.state in (NodeState.UP, NodeState.DRAINING, NodeState.STOPPING):
                node.up_at = node.started_at or self.s.now()
            reason = node.reason or ""
            being_emptied = node.state == NodeState.DRAINING and reason.startswith("emptying")
            if being_emptied or (node.state == NodeState.STOPPING and EMPTIED_DETAIL in reason):
                node.emptying = being_emptied
                view = self.view(node.cluster)
                view.emptying, view.emptying_since = node.name, self.s.now()
        moving = [r for r in self.s.runs.values() if r.stop_reason == StopReason.MOVE and r.status.is_live]
        for run in moving:
            # The stop may not have been sent before the old controller died: send it again
            # (a worker that already stops the run ignores it); the reserved slot is dropped.
            log.info("%s: its move's reserved slot was dropped by the restart; it is queued normally", run.gid)
            self.actions.stop_attempt(run, StopReason.MOVE, run.stop_detail or "moved (consolidation)")
        moved = self.s.store.last_moves(r.gid for r in self.s.runs.values())
        for gid, when in moved.items():
            self.s.runs[gid].moved_at = when
        # A move still under way: the store knows only when the attempt it interrupts started.
        # The move was at most a grace period ago; its cooldown counts from now.
        for run in moving:
            run.moved_at = max(run.moved_at or 0.0, self.s.now())
        experiments = {r.experiment for r in self.s.runs.values()}
        self.s.durations.update(self.s.store.completed_durations(experiments))

    def node_verdicts(self) -> dict[str, NodeVerdict]:
        """Per node: surplus or kept, and why, as the last plan saw it (explained only when asked)."""
        if self._last is None:
            return {}
        snapshot, plan, now = self._last
        out: dict[str, NodeVerdict] = {}
        for cluster in snapshot.clusters:
            out.update(explain_nodes(cluster, plan.cluster(cluster.name), now))
        return out

    def status(self, cluster: str) -> dict:
        spec = self.s.config.clusters[cluster]
        view = self.view(cluster)
        consolidating = None
        if view.emptying is not None:
            consolidating = {"node": view.emptying, "since": view.emptying_since, "moves": list(view.moves)}
        return {"target_nodes": view.target, "scaling_policy": spec.scaling_policy.value,
                "consolidation": spec.consolidation, "consolidating": consolidating, "surplus_reason": view.refusal}

