"""The discrete-event simulation of one cluster under one policy: the event loop.

The parts: `cluster` (SimCluster: nodes, slots, runs, queue waits; it carries out changes and
pushes the events they imply), `events` (the event queue), `controller_step` (what JuQueue's
controller does after a batch of events and on a tick, over the controller's own policy
functions), `dispatch` (placement and scale-out, both policies), `original` (the original's
step), `ticks` (which ticks are evaluated), `replacements` (wall time without a gap) and
`snapshot` (the consolidation snapshot). This module pops the events of one instant as a batch,
hands each to the cluster, then runs the policy's step once.

With wall time and `replacement_lead_s` > 0 (not for `original`), a node whose runs outlive its
warning gets a replacement (an ordinary node start) that lead before it; the drained runs start
on its reserved slots at the warning if it is up by then. Every node start and end goes through
`Simulation.start_node` and `Simulation._end_node`, so a subclass can watch them.
"""

from __future__ import annotations

import heapq
from typing import Protocol

from juqueue.policy.slot_demand import run_slots_error
from juqueue.simulate.cluster import SimCluster
from juqueue.simulate.controller_step import ControllerStep
from juqueue.simulate.dispatch import Dispatch
from juqueue.simulate.distributions import SimulationInputError
from juqueue.simulate.events import Ev, EventQueue
from juqueue.simulate.original import OriginalStep
from juqueue.simulate.replacements import Replacements
from juqueue.simulate.state import NodeState, PolicyResult, PolicyVariant, SimNode
from juqueue.simulate.ticks import Ticks
from juqueue.simulate.workload import Conditions, Workload

STUCK_FACTOR = 10.0  # still going after 10 x the serial time of all runs (+ 30 days): stuck


class Step(Protocol):
    """A policy's step after each batch of events (`ControllerStep`, `OriginalStep`)."""

    def after_batch(self, t: float, tick: bool, check: bool) -> None: ...

    def replace(self, t: float) -> bool: ...


class Simulation:
    """One workload on one cluster under one policy; `run()` returns its PolicyResult."""

    def __init__(self, workload: Workload, conditions: Conditions, policy: PolicyVariant, seed: int = 1,
                 record_series: bool = False, check_fast_path: bool = False) -> None:
        if not workload.runs:
            raise SimulationInputError("the workload has no runs")
        self.w, self.c, self.policy = workload, conditions, policy
        self.record_series, self.check_fast_path = record_series, check_fast_path
        self.result = PolicyResult(policy.name, work_seconds=workload.work_s)
        last_arrival = max(r.arrival_s for r in workload.runs)
        self.horizon_s = 30 * 86400.0 + STUCK_FACTOR * (workload.work_s + last_arrival)
        self._check_feasible()
        for r in workload.runs:
            why = run_slots_error(r.gid, r.slots, conditions.name, conditions.num_slots)
            if why:
                raise SimulationInputError(why)

        self.events = EventQueue()
        self.cluster = SimCluster(workload, conditions, self.result, self.events, seed)
        self.ticks = Ticks(self.cluster)
        original = policy.mode is None
        self.replacing = Replacements(self.cluster, self.start_node, check_fast_path) if (
            not original and conditions.wall_time_s is not None and conditions.replacement_lead_s > 0) else None
        dispatch = Dispatch(self.cluster, self.start_node, check_fast_path, queue_order=not original)
        self.step: Step = OriginalStep(self.cluster, dispatch, self._end_node) if original else ControllerStep(
            self.cluster, policy, self.ticks, dispatch, self.replacing, self._end_node, check_fast_path)
        self._last_sample = (-1, -1)
        self.cluster.wire_runs()

    @property
    def nodes(self) -> dict[str, SimNode]:
        """The live nodes, in order of submission."""
        return self.cluster.nodes

    def _check_feasible(self) -> None:
        """A run that can never finish would restart forever: refuse it by name."""
        c = self.c
        if c.wall_time_s is None:
            return
        life = c.wall_time_s - c.signal_lead_s
        worst = max(self.w.runs, key=lambda r: r.duration_s)
        if worst.duration_s <= life or c.checkpoint_on_term:
            return
        if c.checkpoint_interval_s is None:
            raise SimulationInputError(
                f"run {worst.gid} needs {worst.duration_s:.0f} s but a node lives {life:.0f} s (wall time minus "
                "signal_lead) and runs keep nothing when interrupted: give --checkpoint-interval")
        if life - c.restart_cost_s <= c.checkpoint_interval_s:
            raise SimulationInputError(
                f"run {worst.gid} needs {worst.duration_s:.0f} s: a restarted attempt on a node that lives {life:.0f} s "
                f"never reaches a checkpoint (restart cost {c.restart_cost_s:.0f} s, checkpoint interval "
                f"{c.checkpoint_interval_s:.0f} s)")

    # ---------------------------------------------------------------- the loop
    def run(self) -> PolicyResult:
        heap = self.events.heap
        cluster, ticks, step = self.cluster, self.ticks, self.step
        self._after_batch(0.0, tick=False)
        while heap:
            t = heap[0][0]
            if t > self.horizon_s:
                raise SimulationInputError(f"policy {self.policy.name}: still running after {t / 86400:.0f} "
                                           "simulated days; do some runs never progress?")
            tick = check = False
            only_checks = True  # the batch is replacement looks alone
            while heap and heap[0][0] == t:
                _, kind, _, obj = heapq.heappop(heap)
                only_checks = only_checks and kind == Ev.TICK
                if kind == Ev.END:
                    run, attempt = obj  # type: ignore[misc]
                    if run.attempt == attempt and run.node is not None:
                        cluster.complete(run, t)
                elif kind == Ev.TICK:
                    only_checks = only_checks and t not in ticks.asked
                    tick = tick or ticks.due(t)
                    check = check or t in ticks.checks
                    ticks.checks.discard(t)
                elif kind == Ev.BILL:
                    if cluster.bill(obj, t):  # type: ignore[arg-type]
                        self._up(obj, t)  # type: ignore[arg-type]
                elif kind == Ev.UP:
                    self._up(obj, t)  # type: ignore[arg-type]
                elif kind == Ev.WALL:
                    if obj.state is not NodeState.GONE and obj.warning_at == t:  # type: ignore[union-attr]
                        self._drain(obj, t)  # type: ignore[arg-type]
                else:
                    cluster.arrive(obj)  # type: ignore[arg-type]
            if only_checks and check:
                if not step.replace(t):
                    continue  # a look that started nothing changed nothing (nor asks for other ticks)
                check = False
            self._after_batch(t, tick, check)
            if cluster.remaining == 0 and not cluster.nodes:
                break
        if cluster.remaining:
            raise SimulationInputError(f"policy {self.policy.name}: {cluster.remaining} run(s) never ran")
        return self.result

    def _after_batch(self, t: float, tick: bool, check: bool = False) -> None:
        self.step.after_batch(t, tick, check)
        self.cluster.changed = False
        self._sample(t)

    # ---------------------------------------------------------------- events the cluster alone does not finish
    def _up(self, node: SimNode, t: float) -> None:
        if not self.cluster.up(node, t):
            return
        if self.replacing is not None:
            opens = self.replacing.node_up(node)
            if opens is not None:
                self.ticks.check_at(max(opens, t))

    def _drain(self, node: SimNode, t: float) -> None:
        """The wall-time warning: the node's runs are interrupted (queued again), the node ends."""
        for run in list(node.runs.values()):
            self.cluster.interrupt(run, t)
            run.wall_interrupted_at = t
            self.result.wall_time_interruptions += 1
        self._end_node(node, t)

    def start_node(self, t: float) -> SimNode:
        """Fleet.start_node: submitted now, pending for its queue wait."""
        return self.cluster.start_node(t)

    def _end_node(self, node: SimNode, t: float) -> None:
        """Released, timed out, emptied, drained or cancelled: it bills until now (nothing if pending)."""
        self.cluster.end_node(node, t)
        if self.replacing is not None:
            self.replacing.node_gone(node)

    # ---------------------------------------------------------------- figures
    def _sample(self, t: float) -> None:
        counts = self.cluster.counts
        point = (counts[NodeState.BOOTING] + counts[NodeState.UP], self.cluster.live_slots)
        if point[0] > self.result.max_nodes:
            self.result.max_nodes = point[0]
        if self.record_series and point != self._last_sample:
            series = self.result.series
            if series and series[-1][0] == t:
                series.pop()  # several batches at one instant: the last state counts
            if not series or series[-1][1:] != point:
                series.append((t, *point))
            self._last_sample = point


def simulate(workload: Workload, conditions: Conditions, policies: list[PolicyVariant], seed: int = 1,
             record_series: bool = False) -> list[PolicyResult]:
    """Every policy on the same workload and conditions (and the same queue waits, in order)."""
    return [Simulation(workload, conditions, p, seed, record_series).run() for p in policies]


def lower_bound_node_seconds(workload: Workload, conditions: Conditions) -> float:
    """Completed run-seconds / num_slots: no packing can bill less."""
    return workload.work_s / conditions.num_slots
