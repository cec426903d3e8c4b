"""The discrete-event simulation of one cluster under one policy.

The decisions are the controller's own functions, imported, never copied: `scaling.target_nodes`
and `nodes_to_start` (how many nodes), `placement.place_runs` (where a run goes),
`consolidation.plan_consolidation` (surplus, releases, moves), `scaling.idle_nodes_to_stop`
(idle timeout), `replacement.replacements_to_start` (wall time without a gap, carried out by
`juqueue.simulate.replacements`) and `duration.expected_duration` (what a run is expected to
need). This module
keeps the state they decide over and carries out what they return, in the controller's order:
after each batch of events at one instant, placement (reserved slots first), then scale-out,
then consolidation: empty surplus nodes released at once; a move only on a tick, once the same
plan came out at the previous evaluated tick; the emptied node stops when its runs are off it.

The model (README, "juqueue simulate"):
- A node: submitted -> `queue_s` pending (bills nothing) -> `boot_s` booting (bills, takes no
  run) -> up -> gone (released, idle timeout, emptied, or drained at its wall-time warning,
  `signal_lead` before its limit). It bills from the end of its queue wait to its end. With wall
  time and `replacement_lead_s` > 0 (not for `original`), a node whose runs outlive its warning
  gets a replacement (an ordinary node start) that lead before it; the drained runs start on
  its reserved slots at the warning if it is up by then.
- A run needs `duration_s` of work; a restarted attempt first spends `restart_cost_s`; an
  interrupted attempt (a move, a wall-time drain, the original's kill) keeps the progress of its
  last checkpoint, the rest is work lost. Stops are instant (a checkpointing run exits on
  SIGTERM) and a moved run's next attempt starts on its reserved slot at the same instant.

Cost. A plan is O(nodes x runs per node) and is what takes the time at 1,000 nodes, so:
- Without a surplus (accepting nodes <= target) plan_cluster returns the empty plan at its first
  test; the simulator then does not build it (`check_fast_path=True` builds and compares it).
- Between ticks a plan is built only when it has something to release: with a surplus an empty
  accepting node always ranks into it (surplus_rank's tiers 0 and 1) and the controller releases
  it at once.
- Ticks lie on a fixed grid (`tick_s`), but only ticks that can decide something are evaluated:
  the first tick after a change while there is a surplus, the tick after a move was proposed
  (the re-check), the tick when an idle node's timeout runs out, the tick when the last plan's
  `consolidate_after not reached` ends (no move can come before; the plan says until when),
  the tick when a replacement's protection ends,
  and, while a surplus waits for a reason time alone may lift (a cooldown ends, lost and saved
  work change), one `recheck_max_s` (the median run / 20, at least a tick, at most 300 s) after
  the last plan: a move that becomes possible with time alone, nothing else changing, comes up to
  that much later than in the controller.
- A snapshot's NodeSnapshot and RunOnNode objects are rebuilt only for what changed since the
  last plan (`juqueue.simulate.snapshot`).
"""

from __future__ import annotations

import heapq
import math
import random
import statistics
from enum import IntEnum

from juqueue.policy.consolidation import plan_consolidation
from juqueue.policy.consolidation_model import (ClusterPlan, ClusterSettings, ClusterSnapshot, ConsolidationMode,
                                                Refusal, Snapshot)
from juqueue.policy.duration import expected_duration
from juqueue.policy.replacement import protected
from juqueue.policy.scaling import ClusterLoad, ScalingPolicy, idle_nodes_to_stop, nodes_to_start, target_nodes
from juqueue.policy.slot_demand import nodes_for_unplaced, run_slots_error
from juqueue.policy.slot_placement import NodeSlots, RunDemand, pick_slots, plan_slots
from juqueue.simulate.distributions import SimulationInputError
from juqueue.simulate.original import HeldNode, original_nodes_to_stop
from juqueue.simulate.replacements import Replacements
from juqueue.simulate.snapshot import SnapshotBuilder
from juqueue.simulate.state import NodeState, PolicyResult, PolicyVariant, ReadyQueue, RunState, SimNode
from juqueue.simulate.workload import Conditions, NodeLatency, Workload

PLACEMENT_LOOKAHEAD = 256  # controller.dispatch's: queued runs looked at beyond the free slots (k-slot runs)
RECHECK_FRACTION, RECHECK_MAX_S = 1 / 20, 300.0  # a waiting surplus is looked at again after median/20 (<= 300 s)
STUCK_FACTOR = 10.0  # still going after 10 x the serial time of all runs (+ 30 days): stuck
KEEP_DURATIONS = 200  # completed run times kept per experiment, as the controller keeps them


class _Ev(IntEnum):
    ARRIVE = 0
    BILL = 1
    UP = 2
    END = 3
    WALL = 4
    TICK = 5


class Simulation:
    """One workload on one cluster under one policy; `run()` returns its PolicyResult."""

    def __init__(self, workload: Workload, conditions: Conditions, policy: PolicyVariant, seed: int = 1,
                 record_series: bool = False, check_fast_path: bool = False) -> None:
        if not workload.runs:
            raise SimulationInputError("the workload has no runs")
        self.w, self.c, self.policy = workload, conditions, policy
        self.record_series, self.check_fast_path = record_series, check_fast_path
        self.original = policy.mode is None
        self.idle_mode = policy.mode is ConsolidationMode.IDLE
        self.rng = random.Random(f"queue-wait-{seed}")  # the same waits, in order of submission, for every policy
        median = statistics.median(r.duration_s for r in workload.runs)
        self.recheck_max_s = max(conditions.tick_s, min(RECHECK_MAX_S, median * RECHECK_FRACTION))
        self.settings = ClusterSettings(conditions.num_slots, conditions.max_jobs,
                                        policy.mode or ConsolidationMode.AGGRESSIVE, conditions.consolidate_after_s,
                                        conditions.move_cooldown_s, conditions.grace_period_s)
        self.min_time_left_s = conditions.grace_period_s + 60.0  # Dispatch.place's
        self.result = PolicyResult(policy.name, work_seconds=workload.work_s)
        last_arrival = max(r.arrival_s for r in workload.runs)
        self.horizon_s = 30 * 86400.0 + STUCK_FACTOR * (workload.work_s + last_arrival)
        self._check_feasible()
        for r in workload.runs:
            why = run_slots_error(r.gid, r.slots, conditions.name, conditions.num_slots)
            if why:
                raise SimulationInputError(why)

        self.heap: list[tuple[float, int, int, object]] = []
        self.seq = 0
        self.now = 0.0
        self.runs = {r.gid: RunState(r) for r in workload.runs}
        self.ready = ReadyQueue()
        self.nodes: dict[str, SimNode] = {}  # live (not gone), in order of submission
        self.open: dict[str, SimNode] = {}  # up, with a slot neither used nor reserved
        self.empty_up: dict[str, SimNode] = {}  # up, no run, nothing reserved
        self.moving: dict[str, RunState] = {}  # runs with a reserved slot
        self.counts = {NodeState.PENDING: 0, NodeState.BOOTING: 0, NodeState.UP: 0}
        self.node_seq = 0
        self.live_slots = 0  # slots of running attempts
        self.remaining = len(self.runs)
        self.completed: dict[str, list[float]] = {}  # experiment -> run times of its last completed runs
        self.completed_changed = False
        self.snapshots = SnapshotBuilder(conditions)
        self.surplus: frozenset[str] = frozenset()
        self.surplus_since: float | None = None
        self.proposal: tuple | None = None  # the last evaluated tick's (node, moves)
        self.last_up_at: float | None = None
        self.ticks: dict[float, bool] = {}  # ticks to evaluate (the rest of the grid is skipped) -> only a re-check's
        self.recheck_at: float | None = None  # the next time-driven look at a waiting surplus
        self.too_soon_until = -math.inf  # the last plan's `consolidate_after not reached` lasts until then
        self.changed = False
        self.dirty_placement = True
        self.latencies = iter(workload.latencies) if workload.latencies else None
        self.replacing = Replacements(self) if (not self.original and conditions.wall_time_s is not None
                                                and conditions.replacement_lead_s > 0) else None
        self.checks: set[float] = set()  # ticks asked for by replacements only (Replacements.start_due)
        self._last_sample = (-1, -1)
        self._wire_runs()

    # ---------------------------------------------------------------- set-up
    def _check_feasible(self) -> None:
        """A run that can never finish would restart forever: refuse it by name."""
        c = self.c
        if c.wall_time_s is None:
            return
        life = c.wall_time_s - c.signal_lead_s
        worst = max(self.w.runs, key=lambda r: r.duration_s)
        if worst.duration_s <= life:
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

    def _wire_runs(self) -> None:
        for run in self.runs.values():
            for dep in run.spec.depends_on:
                other = self.runs.get(dep)
                if other is not None:  # a dependency outside the simulated runs counts as met
                    run.unmet += 1
                    other.dependents.append(run)
        for run in self.runs.values():
            if run.spec.arrival_s <= 0:
                self._arrive(run)
            else:
                self._push(run.spec.arrival_s, _Ev.ARRIVE, run)

    # ---------------------------------------------------------------- the loop
    def _push(self, at: float, kind: _Ev, obj: object) -> None:
        """Events at one instant go by kind (a run that ends exactly at its node's wall-time
        warning has ended), then in the order they were made."""
        self.seq += 1
        heapq.heappush(self.heap, (at, kind, self.seq, obj))

    def run(self) -> PolicyResult:
        heap = self.heap
        self._after_batch(0.0, tick=False)
        while heap:
            t = heap[0][0]
            if t > self.horizon_s:
                raise SimulationInputError(f"policy {self.policy.name}: still running after {t / 86400:.0f} "
                                           "simulated days; do some runs never progress?")
            self.now = t
            tick = check = False
            only_checks = True  # the batch is replacement looks alone
            while heap and heap[0][0] == t:
                _, kind, _, obj = heapq.heappop(heap)
                only_checks = only_checks and kind == _Ev.TICK
                if kind == _Ev.END:
                    run, attempt = obj  # type: ignore[misc]
                    if run.attempt == attempt and run.node is not None:
                        self._complete(run, t)
                elif kind == _Ev.TICK:
                    only_checks = only_checks and t not in self.ticks
                    tick = tick or self._tick_due(t)
                    check = check or t in self.checks
                    self.checks.discard(t)
                elif kind == _Ev.BILL:
                    self._bill(obj, t)  # type: ignore[arg-type]
                elif kind == _Ev.UP:
                    self._up(obj, t)  # type: ignore[arg-type]
                elif kind == _Ev.WALL:
                    if obj.state is not NodeState.GONE and obj.warning_at == t:  # type: ignore[union-attr]
                        self._drain(obj, t)  # type: ignore[arg-type]
                else:
                    self._arrive(obj)  # type: ignore[arg-type]
            if only_checks and check:
                if not self._replace(t):
                    continue  # a look that started nothing changed nothing (nor asks for other ticks)
                check = False
            self._after_batch(t, tick, check)
            if self.remaining == 0 and not self.nodes:
                break
        if self.remaining:
            raise SimulationInputError(f"policy {self.policy.name}: {self.remaining} run(s) never ran")
        return self.result

    def _after_batch(self, t: float, tick: bool, check: bool = False) -> None:
        if self.original:
            if self.dirty_placement:
                self._original_step(t)
        else:
            if tick:
                self._stop_idle(t)
                self.dirty_placement = True  # as the controller's tick does
            if tick or check:
                self._replace(t)
            if self.dirty_placement:
                self._juqueue_step(t, tick)
            self._schedule_ticks(t)
        self.changed = False
        self._sample(t)

    def _replace(self, t: float) -> bool:
        """Controller._tick's replacements.start_due (after the idle stops): True if any started."""
        if self.replacing is None:
            return False
        started = self.replacing.start_due(t)
        for node in started:
            self.dirty_placement = True
            self._tick_at(node.protected_until)  # type: ignore[arg-type]  # consolidation counts it from then on
        return bool(started)

    # ---------------------------------------------------------------- events
    def _arrive(self, run: RunState) -> None:
        run.arrived = True
        if run.unmet == 0:
            self._enqueue(run)

    def _enqueue(self, run: RunState) -> None:
        self.ready.add(run)
        self.dirty_placement = self.changed = True

    def _bill(self, node: SimNode, t: float) -> None:
        if node.state is not NodeState.PENDING:
            return  # cancelled while pending
        self._set_state(node, NodeState.BOOTING)
        node.bill_from = t
        if self.c.wall_time_s is not None:
            node.limit_at = t + self.c.wall_time_s
            node.warning_at = node.limit_at - self.c.signal_lead_s
            self._push(node.warning_at, _Ev.WALL, node)
        if node.latency.boot_s > 0:
            self._push(t + node.latency.boot_s, _Ev.UP, node)
        else:
            self._up(node, t)

    def _up(self, node: SimNode, t: float) -> None:
        if node.state is not NodeState.BOOTING:
            return
        self._set_state(node, NodeState.UP)
        node.up_at = self.last_up_at = node.idle_since = t
        if not node.reserved:  # a replacement holds slots for the runs it is for
            self.empty_up[node.name] = node
        self._update_open(node)
        if self.replacing is not None:
            opens = self.replacing.node_up(node)
            if opens is not None:
                self._check_at(max(opens, t))
        self.dirty_placement = self.changed = True

    def _complete(self, run: RunState, t: float) -> None:
        self._off_node(run, t)
        self._release_reservation(run)  # a replacement's slot it no longer needs
        self.remaining -= 1
        self.result.makespan_s = max(self.result.makespan_s, t)
        times = self.completed.setdefault(run.spec.experiment, [])
        times.append(t - run.started_at)  # the controller's note_completed: the last attempt's run time
        del times[:-KEEP_DURATIONS]
        self.completed_changed = True
        for dependent in run.dependents:
            dependent.unmet -= 1
            if dependent.unmet == 0 and dependent.arrived:
                self._enqueue(dependent)
        self.dirty_placement = True

    def _drain(self, node: SimNode, t: float) -> None:
        """The wall-time warning: the node's runs are interrupted (queued again), the node ends."""
        for run in list(node.runs.values()):
            self._interrupt(run, t)
            run.wall_interrupted_at = t
            self.result.wall_time_interruptions += 1
        self._end_node(node, t)

    # ---------------------------------------------------------------- runs on nodes
    def _start(self, run: RunState, node: SimNode, slots: tuple[int, ...], t: float) -> None:
        self.ready.remove(run)
        run.node = node
        run.slot_indices = slots
        run.attempt += 1
        run.started_at = t
        run.overhead = self.c.restart_cost_s if run.restarted else 0.0
        if run.wall_interrupted_at is not None:
            self.result.note_wall_time_gap(t - run.wall_interrupted_at)
            run.wall_interrupted_at = None
        node.runs[run.gid] = run
        node.used.update(slots)
        node.version += 1
        node.idle_since = None
        self.empty_up.pop(node.name, None)
        self._update_open(node)
        self.live_slots += run.slots
        self._push(t + run.overhead + max(0.0, run.spec.duration_s - run.saved), _Ev.END, (run, run.attempt))
        self.changed = True

    def _off_node(self, run: RunState, t: float) -> None:
        node = run.node
        assert node is not None
        del node.runs[run.gid]
        node.used.difference_update(run.slot_indices)
        node.version += 1
        run.node, run.slot_indices = None, ()
        self.live_slots -= run.slots
        self.result.busy_slot_seconds += (t - run.started_at) * run.slots
        if node.state is NodeState.UP:
            self._update_open(node)
            if not node.runs:
                node.idle_since = t
                if not node.reserved:
                    self.empty_up[node.name] = node
        self.changed = True

    def _interrupt(self, run: RunState, t: float) -> None:
        """The attempt ends now: the progress up to its last checkpoint is kept, the rest is lost."""
        elapsed = t - run.started_at
        progress = max(0.0, elapsed - run.overhead)
        interval = self.c.checkpoint_interval_s
        if interval is None:
            kept = 0.0
        elif interval == 0:
            kept = progress
        else:
            kept = math.floor(progress / interval) * interval
        run.saved = min(run.spec.duration_s, run.saved + kept)
        self.result.lost_seconds += ((elapsed - run.overhead - kept) if kept > 0 else elapsed) * run.slots
        run.restarted = True
        run.attempt += 1  # its END event no longer matches
        self._off_node(run, t)
        self._enqueue(run)

    # ---------------------------------------------------------------- nodes
    def _set_state(self, node: SimNode, state: NodeState) -> None:
        if node.state in self.counts:
            self.counts[node.state] -= 1
        node.state = state
        if state in self.counts:
            self.counts[state] += 1
        node.version += 1

    def start_node(self, t: float) -> SimNode:
        """Fleet.start_node: submitted now, pending for its queue wait."""
        self.node_seq += 1
        latency = self._latency()
        node = SimNode(f"n{self.node_seq:06d}", t, latency)
        self.nodes[node.name] = node
        self.counts[NodeState.PENDING] += 1
        self.result.node_starts += 1
        self._push(t + latency.queue_s, _Ev.BILL, node)
        self.changed = True
        return node

    def _latency(self) -> NodeLatency:
        if self.latencies is not None:
            latency = next(self.latencies, None)
            if latency is None:  # more nodes than were recorded: the recorded ones again, in order
                self.latencies = iter(self.w.latencies)
                latency = next(self.latencies)
            return latency
        return NodeLatency(queue_s=self.c.queue_wait.sample(self.rng) if self.c.queue_wait is not None else 0.0)

    def _end_node(self, node: SimNode, t: float) -> None:
        """Released, timed out, emptied, drained or cancelled: it bills until now (nothing if pending)."""
        assert not node.runs
        if node.bill_from is not None:
            self.result.node_seconds += t - node.bill_from
        self._set_state(node, NodeState.GONE)
        del self.nodes[node.name]
        self.open.pop(node.name, None)
        self.empty_up.pop(node.name, None)
        for run in [r for r in self.moving.values() if r.move_to is node]:
            self._release_reservation(run)
        if self.replacing is not None:
            self.replacing.node_gone(node)
        self.changed = self.dirty_placement = True

    def _update_open(self, node: SimNode) -> None:
        """`open`: up nodes with a slot neither used nor reserved."""
        if node.state is NodeState.UP and len(node.used) + node.reserved < self.c.num_slots:
            self.open[node.name] = node
        else:
            self.open.pop(node.name, None)

    def _accepting(self) -> int:
        counts = self.counts
        return counts[NodeState.PENDING] + counts[NodeState.BOOTING] + counts[NodeState.UP]

    def _counted(self, t: float) -> int:
        """Accepting nodes consolidation counts against the target: protected replacements are not."""
        accepting = self._accepting()
        return accepting - self.replacing.protected_count(t) if self.replacing is not None else accepting

    # ---------------------------------------------------------------- the controller's batch
    def _target(self) -> int:
        c = self.c
        return target_nodes(self.live_slots + self.ready.slots, c.num_slots, c.max_jobs, self.policy.scaling,
                            c.min_saturation)

    def _juqueue_step(self, t: float, tick: bool) -> None:
        """Controller._place_and_scale: surplus, placement, scale-out, consolidation."""
        self.dirty_placement = False
        target = self._target()
        if self._counted(t) <= target:
            self._no_surplus(t, target)
        elif tick and len(self.ready):
            self._adopt(self._plan(t, target))  # placement and scale-out get the surplus of now
        self._place(t)
        self._scale_out(t, target)
        self._act(t, tick)

    def _act(self, t: float, tick: bool) -> None:
        """Consolidator.act: releases at once, moves on ticks once the plan held since the previous one."""
        target = self._target()
        if self._counted(t) <= target:
            self._no_surplus(t, target)
            if tick:
                self.proposal = None
            return
        if tick and not (self.idle_mode and not len(self.ready)):
            plan = self._plan(t, target)
        elif not self.idle_mode and self._has_empty_accepting():
            plan, tick = self._plan(t, target), False
        else:
            # Nothing the plan could do now (idle mode: its surplus serves only placement and
            # scale-out, which have no ready run). What it would say: the surplus began now.
            if self.surplus_since is None:
                self.surplus_since = t
            return
        self._adopt(plan)
        for name in plan.release:
            node = self.nodes.get(name)
            if node is not None and not node.runs and not node.reserved:
                self._end_node(node, t)
        if not tick:
            return
        proposal = (plan.empty, tuple((m.run, m.to) for m in plan.moves)) if plan.empty else None
        previous, self.proposal = self.proposal, proposal
        if proposal is not None and proposal == previous:
            self.proposal = None
            self._move(plan, t)
        self._note_refusal(plan, t)

    def _no_surplus(self, t: float, target: int) -> None:
        if self.check_fast_path:
            plan = self._plan(t, target)
            assert plan == ClusterPlan(self.c.name, target), plan
        self.surplus, self.surplus_since = frozenset(), None

    def _has_empty_accepting(self) -> bool:
        return bool(self.counts[NodeState.PENDING] or self.counts[NodeState.BOOTING] or self.empty_up)

    def _adopt(self, plan: ClusterPlan) -> None:
        self.surplus = frozenset(plan.surplus)
        self.surplus_since = plan.surplus_since

    def _move(self, plan: ClusterPlan, t: float) -> None:
        """Every run of the emptied node stops now, its slot reserved on its destination; the node ends."""
        source = self.nodes[plan.empty]  # type: ignore[index]
        for move in plan.moves:
            run, dest = self.runs[move.run], self.nodes[move.to]
            run.moved_at = t
            self._interrupt(run, t)
            self.reserve(run, dest)
            self.result.moves += 1
        self.result.nodes_emptied += 1
        self._end_node(source, t)
        self._place(t)

    def reserve(self, run: RunState, dest: SimNode) -> None:
        """ControllerState.reserve: the run's next attempt gets its slots on `dest` (a move's
        destination, or a replacement), no other run does; a former reservation is dropped."""
        self._release_reservation(run)
        run.move_to = dest
        dest.reserved += run.slots
        dest.version += 1
        self.moving[run.gid] = run
        self._update_open(dest)
        self.empty_up.pop(dest.name, None)

    def _release_reservation(self, run: RunState) -> None:
        dest = run.move_to
        if dest is not None:
            dest.reserved -= run.slots
            dest.version += 1
            self._update_open(dest)
            if dest.state is NodeState.UP and not dest.runs and not dest.reserved:
                self.empty_up[dest.name] = dest
        run.move_to = None
        self.moving.pop(run.gid, None)

    def _place(self, t: float) -> None:
        """Dispatch.place: moved runs onto their reserved slots, then plan_slots over the queue's head.

        While every run it looks at needs one slot, only up nodes with a usable free slot are
        passed and only as many runs as there are free slots: full and starting nodes matter to
        plan_slots only for a run that fits nowhere (giving way, holds), and a one-slot run fits
        wherever a slot is free; the rest of the head would find every slot taken."""
        for run in list(self.moving.values()):
            if not run.queued:
                continue  # its attempt is not over yet
            dest = run.move_to
            self._release_reservation(run)
            if dest is not None and dest.state is NodeState.UP:
                slots = pick_slots([i for i in range(self.c.num_slots) if i not in dest.used], run.slots)
                if slots is not None:
                    self._start(run, dest, slots, t)
        if not len(self.ready) or not self.open:
            return
        num_slots, name = self.c.num_slots, self.c.name
        # The controller counts every up node's unused slots; a node missing from `open` has none
        # that is not reserved, and a reserved slot takes no run: the same runs get placed.
        free = sum(num_slots - len(n.used) for n in self.open.values())
        if self.ready.multi:
            head = self.ready.head(free + PLACEMENT_LOOKAHEAD)
            multi = any(r.slots > 1 for r in head)
        else:
            head, multi = self.ready.head(free), False
        demands = [RunDemand(r.gid, r.slots) for r in head if r.gid not in self.moving]
        if not demands:
            return
        nodes = self.slot_nodes(t) if multi else [
            NodeSlots(n.name, name, num_slots, frozenset(n.used), time_left_s=None if n.limit_at is None else n.limit_at - t,
                      surplus=n.name in self.surplus) for n in self.open.values()]
        reserved = self.reserved_slots()
        for p in plan_slots({name: demands}, nodes, self.min_time_left_s, reserved).placements:
            self._start(self.runs[p.run], self.nodes[p.node], p.slots, t)

    def reserved_slots(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for run in self.moving.values():
            if run.move_to is not None:
                out[run.move_to.name] = out.get(run.move_to.name, 0) + run.slots
        return out

    def slot_nodes(self, t: float) -> list[NodeSlots]:
        """ControllerState.slot_nodes: pending, booting and up nodes."""
        return [NodeSlots(n.name, self.c.name, self.c.num_slots, frozenset(n.used), accepting=n.state is NodeState.UP,
                          starting=n.state is not NodeState.UP,
                          time_left_s=None if n.limit_at is None else n.limit_at - t, surplus=n.name in self.surplus)
                for n in self.nodes.values()]

    def _scale_out(self, t: float, target: int) -> None:
        """Fleet.scale_out: nodes_to_start over the cluster's load, up to the target."""
        c = self.c
        if not len(self.ready):
            return  # nodes_to_start starts nothing without ready runs (no replacements are asked for)
        starting = self.counts[NodeState.PENDING] + self.counts[NodeState.BOOTING]
        surplus_free = sum(max(0, c.num_slots - len(n.used) - n.reserved) for name in self.surplus
                           if (n := self.nodes.get(name)) is not None and n.state is NodeState.UP)
        unfit = 0
        if self.ready.slots > len(self.ready):  # ControllerState.unfit_nodes: k-slot runs that fit no node whole
            unfit = nodes_for_unplaced([RunDemand(r.gid, r.slots) for r in self.ready], self.slot_nodes(t), c.num_slots,
                                       self.reserved_slots())
        load = ClusterLoad(ready_queued=self.ready.slots, num_slots=c.num_slots, max_jobs=c.max_jobs,
                           free_slots_accepting=starting * c.num_slots, live_nodes=len(self.nodes),
                           accepting_nodes=self._accepting(), surplus_free_slots=surplus_free, unfit_nodes=unfit)
        for _ in range(nodes_to_start(load, target=target)):
            self.start_node(t)

    def _stop_idle(self, t: float) -> None:
        """Fleet.stop_idle_nodes (every policy of JuQueue's; the tick calls it)."""
        idle = {n.name: n.idle_since for n in self.empty_up.values()
                if n.idle_since is not None and not protected(n.protected_until, t)}
        if idle:
            for name in idle_nodes_to_stop(idle, t, self.c.idle_timeout_s, ready_waiting=len(self.ready),  # type: ignore[arg-type]
                                           accepting=set(idle)):
                self._end_node(self.nodes[name], t)

    # ---------------------------------------------------------------- the plan
    def _plan(self, t: float, target: int) -> ClusterPlan:
        self.result.evaluations += 1
        if self.completed_changed:
            self.snapshots.note_medians({e: expected_duration(None, times) for e, times in self.completed.items()})
            self.completed_changed = False
        cluster = ClusterSnapshot(self.c.name, self.settings, target, self.snapshots.nodes(self.nodes.values(), t),
                                  self.surplus_since, None)
        return plan_consolidation(Snapshot((cluster,)), t).clusters[0]

    def _note_refusal(self, plan: ClusterPlan, t: float) -> None:
        """When to look again while a surplus waits (see the module's docstring)."""
        if plan.refusal is Refusal.TOO_SOON:
            after = self.c.consolidate_after_s
            self.too_soon_until = max((self.last_up_at or t) + after, (plan.surplus_since or t) + after)
            self._tick_at(max(self.too_soon_until, t + self.c.tick_s))
        elif plan.empty is None and plan.refusal is not None:
            # Time alone may lift it (cooldowns end, lost and saved work change): look again
            # if nothing else made us look within recheck_max_s.
            self._tick_at(t + self.recheck_max_s, recheck=True)

    # ---------------------------------------------------------------- ticks
    def _tick_at(self, at: float, recheck: bool = False) -> None:
        grid = self.c.tick_s
        at = math.ceil(at / grid - 1e-9) * grid
        if recheck:
            self.recheck_at = at
        if at not in self.ticks and at not in self.checks:
            self._push(at, _Ev.TICK, None)
        self.ticks[at] = self.ticks.get(at, True) and recheck  # True: only a re-check asked for it

    def _check_at(self, at: float) -> None:
        """A tick for the replacement decision alone (the rest of the tick decides nothing then)."""
        grid = self.c.tick_s
        at = math.ceil(at / grid - 1e-9) * grid
        if at not in self.ticks and at not in self.checks:
            self._push(at, _Ev.TICK, None)
        self.checks.add(at)

    def _tick_due(self, t: float) -> bool:
        """A tick asked for at t, unless only by a re-check that a later plan put off."""
        only_recheck = self.ticks.pop(t, None)
        return only_recheck is not None and (not only_recheck or self.recheck_at == t)

    def _schedule_ticks(self, t: float) -> None:
        grid = self.c.tick_s
        next_grid = math.floor(t / grid + 1e-9) * grid + grid
        if self.proposal is not None:
            self._tick_at(next_grid)  # the re-check
        if self.changed:
            if self._counted(t) > self._target():
                self._tick_at(max(next_grid, self.too_soon_until))
            if self.replacing is not None and self.replacing.waiting():
                self._check_at(next_grid)
        if self.empty_up:
            timeout = self.c.idle_timeout_s
            due = min(max(n.idle_since + timeout, n.protected_until or -math.inf)  # type: ignore[operator]
                      for n in self.empty_up.values() if n.idle_since is not None)
            self._tick_at(max(next_grid, due))

    # ---------------------------------------------------------------- the original (0.0.15)
    def _original_step(self, t: float) -> None:
        """After every batch: kill above the count at once (original_nodes_to_stop), place, scale out."""
        self.dirty_placement = False
        c = self.c
        target = target_nodes(self.live_slots + self.ready.slots, c.num_slots, c.max_jobs, ScalingPolicy.MAXIMIZE_RUNNING)
        held = [HeldNode(n.name, n.state is NodeState.PENDING, len(n.runs)) for n in self.nodes.values()] \
            if len(self.nodes) > target else []  # at or below the count there is nothing to list
        for name in original_nodes_to_stop(held, target):
            node = self.nodes[name]
            if node.runs:
                self.result.nodes_emptied += 1
            for run in list(node.runs.values()):
                self._interrupt(run, t)
                self.result.moves += 1
            self._end_node(node, t)
        self._place(t)
        self._scale_out(t, target)

    # ---------------------------------------------------------------- figures
    def _sample(self, t: float) -> None:
        point = (self.counts[NodeState.BOOTING] + self.counts[NodeState.UP], self.live_slots)
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
