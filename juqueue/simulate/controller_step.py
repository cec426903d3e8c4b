"""What JuQueue's controller does after a batch of events and on a tick, mirrored over the
simulated cluster. The decisions are the controller's own functions, imported, never copied:
`scaling.target_nodes` (how many nodes), `consolidation.plan_consolidation` (surplus, releases,
moves), `scaling.idle_nodes_to_stop` (idle timeout), `replacement.replacements_to_start` (via
`replacements`) and `duration.expected_duration` (what a run is expected to need); placement
and scale-out are `dispatch`'s. The order is the controller's: after each batch of events at
one instant, placement (reserved slots first), then scale-out, then consolidation: empty surplus
nodes released at once; a move only on a tick, once the same plan came out at the previous
evaluated tick; the emptied node stops when its runs are off it.

Cost: without a surplus (accepting nodes <= target) plan_cluster returns the empty plan at its
first test; the step then does not build it (`check_fast_path=True` builds and compares it).
Between ticks a plan is built only when it has something to release: with a surplus an empty
accepting node always ranks into it (surplus_rank's tiers 0 and 1) and the controller releases
it at once. Which ticks are evaluated: `ticks`.
"""

from __future__ import annotations

from collections.abc import Callable

from juqueue.policy.consolidation import plan_consolidation
from juqueue.policy.consolidation_model import (ClusterPlan, ClusterSettings, ClusterSnapshot, ConsolidationMode,
                                                Snapshot)
from juqueue.policy.duration import expected_duration
from juqueue.policy.replacement import protected
from juqueue.policy.scaling import idle_nodes_to_stop, target_nodes
from juqueue.simulate.cluster import SimCluster
from juqueue.simulate.dispatch import Dispatch
from juqueue.simulate.replacements import Replacements
from juqueue.simulate.snapshot import SnapshotBuilder
from juqueue.simulate.state import PolicyVariant, SimNode
from juqueue.simulate.ticks import Ticks


class ControllerStep:
    """Controller._place_and_scale, Consolidator.act and the tick's idle stops and replacements
    for one policy; `end_node` is the simulation's (which a test may watch)."""

    def __init__(self, cluster: SimCluster, policy: PolicyVariant, ticks: Ticks, dispatch: Dispatch,
                 replacing: Replacements | None, end_node: Callable[[SimNode, float], None],
                 check_fast_path: bool) -> None:
        c = cluster.c
        self.cluster, self.c, self.policy, self.ticks, self.dispatch = cluster, c, policy, ticks, dispatch
        self.replacing, self.end_node, self.check_fast_path = replacing, end_node, check_fast_path
        self.idle_mode = policy.mode is ConsolidationMode.IDLE
        self.settings = ClusterSettings(c.num_slots, c.max_jobs, policy.mode or ConsolidationMode.AGGRESSIVE,
                                        c.consolidate_after_s, c.move_cooldown_s, c.grace_period_s)
        self.snapshots = SnapshotBuilder(c)
        self.surplus_since: float | None = None
        self.proposal: tuple | None = None  # the last evaluated tick's (node, moves)
        self._target: tuple[int, int] = (-1, 0)  # (demand, target_nodes) last asked

    def after_batch(self, t: float, tick: bool, check: bool) -> None:
        """The tick's idle stops and replacements (on a tick), then the batch's step, then the next ticks."""
        cluster = self.cluster
        if tick:
            self.stop_idle(t)
            cluster.dirty_placement = True  # as the controller's tick does
        if tick or check:
            self.replace(t)
        if cluster.dirty_placement:
            self.step(t, tick)
        self.ticks.schedule(t, self)

    def replace(self, t: float) -> bool:
        """Controller._tick's replacements.start_due (after the idle stops): True if any started."""
        if self.replacing is None:
            return False
        started = self.replacing.start_due(t)
        for node in started:
            self.cluster.dirty_placement = True
            self.ticks.at(node.protected_until)  # type: ignore[arg-type]  # consolidation counts it from then on
        return bool(started)

    # ---------------------------------------------------------------- what the tick plan reads
    def has_surplus(self, t: float) -> bool:
        return self.counted(t) > self.target()

    def replacement_waiting(self) -> bool:
        return self.replacing is not None and self.replacing.waiting()

    # ---------------------------------------------------------------- the controller's batch
    def target(self) -> int:
        """scaling.target_nodes over live + ready slots (the same demand gives the same target:
        it is asked several times per batch)."""
        cluster, c = self.cluster, self.c
        demand = cluster.live_slots + cluster.ready.slots
        if demand != self._target[0]:
            self._target = (demand, target_nodes(demand, c.num_slots, c.max_jobs, self.policy.scaling, c.min_saturation))
        return self._target[1]

    def counted(self, t: float) -> int:
        """Accepting nodes consolidation counts against the target: protected replacements are not."""
        accepting = self.cluster.accepting()
        return accepting - self.replacing.protected_count(t) if self.replacing is not None else accepting

    def step(self, t: float, tick: bool) -> None:
        """Controller._place_and_scale: surplus, placement, scale-out, consolidation."""
        self.cluster.dirty_placement = False
        target = self.target()
        if self.counted(t) <= target:
            self._no_surplus(t, target)
        elif tick and len(self.cluster.ready):
            self._adopt(self._plan(t, target))  # placement and scale-out get the surplus of now
        self.dispatch.place(t)
        self.dispatch.scale_out(t, target)
        self._act(t, tick)

    def _act(self, t: float, tick: bool) -> None:
        """Consolidator.act: releases at once, moves on ticks once the plan held since the previous one."""
        cluster = self.cluster
        target = self.target()
        if self.counted(t) <= target:
            self._no_surplus(t, target)
            if tick:
                self.proposal = None
            return
        if tick and not (self.idle_mode and not len(cluster.ready)):
            plan = self._plan(t, target)
        elif not self.idle_mode and cluster.has_empty_accepting():
            plan, tick = self._plan(t, target), False
        else:
            # Nothing the plan could do now (idle mode: its surplus serves only placement and
            # scale-out, which have no ready run). What it would say: the surplus began now.
            if self.surplus_since is None:
                self.surplus_since = t
            return
        self._adopt(plan)
        for name in plan.release:
            node = cluster.nodes.get(name)
            if node is not None and not node.runs and not node.reserved:
                self.end_node(node, t)
        if not tick:
            return
        proposal = (plan.empty, tuple((m.run, m.to) for m in plan.moves)) if plan.empty else None
        previous, self.proposal = self.proposal, proposal
        if proposal is not None and proposal == previous:
            self.proposal = None
            self._move(plan, t)
        self.ticks.note_refusal(plan, t)

    def _no_surplus(self, t: float, target: int) -> None:
        if self.check_fast_path:
            plan = self._plan(t, target)
            assert plan == ClusterPlan(self.c.name, target), plan
        self.cluster.surplus, self.surplus_since = frozenset(), None

    def _adopt(self, plan: ClusterPlan) -> None:
        self.cluster.surplus = frozenset(plan.surplus)
        self.surplus_since = plan.surplus_since

    def _move(self, plan: ClusterPlan, t: float) -> None:
        """Every run of the emptied node stops now, its slot reserved on its destination; the node ends."""
        cluster = self.cluster
        source = cluster.nodes[plan.empty]  # type: ignore[index]
        for move in plan.moves:
            run, dest = cluster.runs[move.run], cluster.nodes[move.to]
            run.moved_at = t
            cluster.interrupt(run, t)
            cluster.reserve(run, dest)
            cluster.result.moves += 1
        cluster.result.nodes_emptied += 1
        self.end_node(source, t)
        self.dispatch.place(t)

    def stop_idle(self, t: float) -> None:
        """Fleet.stop_idle_nodes (every policy of JuQueue's; the tick calls it)."""
        cluster = self.cluster
        idle = {n.name: n.idle_since for n in cluster.empty_up.values()
                if n.idle_since is not None and not protected(n.protected_until, t)}
        if idle:
            for name in idle_nodes_to_stop(idle, t, self.c.idle_timeout_s, ready_waiting=len(cluster.ready),  # type: ignore[arg-type]
                                           accepting=set(idle)):
                self.end_node(cluster.nodes[name], t)

    def _plan(self, t: float, target: int) -> ClusterPlan:
        cluster = self.cluster
        cluster.result.evaluations += 1
        if cluster.completed_changed:
            self.snapshots.note_medians({e: expected_duration(None, times) for e, times in cluster.completed.items()})
            cluster.completed_changed = False
        snapshot = ClusterSnapshot(self.c.name, self.settings, target, self.snapshots.nodes(cluster.nodes.values(), t),
                                   self.surplus_since, None, self.snapshots.medians)
        return plan_consolidation(Snapshot((snapshot,)), t).clusters[0]
