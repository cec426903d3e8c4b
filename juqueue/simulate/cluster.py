"""One simulated cluster's bookkeeping, the simulator's ControllerState: its nodes and their
slots, the runs on them and in the ready queue, reserved slots, completed run times, and the
node start latencies (queue waits). It carries out changes (a run starts, ends or is
interrupted; a node is submitted, bills, comes up, ends) and pushes the events they imply; it
decides nothing (the decisions are in `controller_step`, `dispatch` and `original`).

The model (README, "juqueue simulate"):
- A node: submitted -> `queue_s` pending (bills nothing) -> `boot_s` booting (bills, takes no
  run) -> up -> gone (released, idle timeout, emptied, or drained at its wall-time warning,
  `signal_lead` before its limit). It bills from the end of its queue wait to its end.
- A run needs `duration_s` of work; a restarted attempt first spends `restart_cost_s`; an
  interrupted attempt (a move, a wall-time drain, the original's kill) keeps the progress of its
  last checkpoint (all of it with `checkpoint_on_term`), the rest is work lost. Stops are
  instant (a checkpointing run exits on SIGTERM) and a moved run's next attempt starts on its
  reserved slot at the same instant.
"""

from __future__ import annotations

import math
import random

from juqueue.policy.slot_placement import NodeSlots
from juqueue.simulate.events import Ev, EventQueue
from juqueue.simulate.state import NodeState, PolicyResult, ReadyQueue, RunState, SimNode
from juqueue.simulate.workload import Conditions, NodeLatency, Workload

KEEP_DURATIONS = 200  # completed run times kept per experiment, as the controller keeps them


class SimCluster:
    """Nodes, slots, runs and queue waits of the one simulated cluster; `result` gets its figures."""

    def __init__(self, workload: Workload, conditions: Conditions, result: PolicyResult, events: EventQueue,
                 seed: int) -> None:
        self.w, self.c, self.result, self.events = workload, conditions, result, events
        self.rng = random.Random(f"queue-wait-{seed}")  # the same waits, in order of submission, for every policy
        self.runs = {r.gid: RunState(r) for r in workload.runs}
        self.ready = ReadyQueue()
        self.nodes: dict[str, SimNode] = {}  # live (not gone), in order of submission
        self.open: dict[str, SimNode] = {}  # up, with a slot neither used nor reserved
        self.empty_up: dict[str, SimNode] = {}  # up, no run, nothing reserved
        self.moving: dict[str, RunState] = {}  # runs with a reserved slot
        self.surplus: frozenset[str] = frozenset()  # nodes above the target: placed on last
        self.counts = {NodeState.PENDING: 0, NodeState.BOOTING: 0, NodeState.UP: 0}
        self.node_seq = 0
        self.live_slots = 0  # slots of running attempts
        self.remaining = len(self.runs)
        self.completed: dict[str, list[float]] = {}  # experiment -> run times of its last completed runs
        self.completed_changed = False
        self.last_up_at: float | None = None
        self.changed = False  # since the last batch's end: what the tick plan reads
        self.dirty_placement = True  # placement (and the controller's step) must run again
        self.latencies = iter(workload.latencies) if workload.latencies else None

    def wire_runs(self) -> None:
        """Dependencies counted, runs queued now or at their arrival."""
        for run in self.runs.values():
            for dep in run.spec.depends_on:
                other = self.runs.get(dep)
                if other is not None:  # a dependency outside the simulated runs counts as met
                    run.unmet += 1
                    other.dependents.append(run)
        for run in self.runs.values():
            if run.spec.arrival_s <= 0:
                self.arrive(run)
            else:
                self.events.push(run.spec.arrival_s, Ev.ARRIVE, run)

    # ---------------------------------------------------------------- events
    def arrive(self, run: RunState) -> None:
        run.arrived = True
        if run.unmet == 0:
            self.enqueue(run)

    def enqueue(self, run: RunState) -> None:
        self.ready.add(run)
        self.dirty_placement = self.changed = True

    def bill(self, node: SimNode, t: float) -> bool:
        """The node's queue wait is over: it bills, boots, and has a wall-time warning from now.
        True: it has no boot time, the caller brings it up now (`up`, and what watches node starts)."""
        if node.state is not NodeState.PENDING:
            return False  # cancelled while pending
        self.set_state(node, NodeState.BOOTING)
        node.bill_from = t
        if self.c.wall_time_s is not None:
            node.limit_at = t + self.c.wall_time_s
            node.warning_at = node.limit_at - self.c.signal_lead_s
            self.events.push(node.warning_at, Ev.WALL, node)
        if node.latency.boot_s > 0:
            self.events.push(t + node.latency.boot_s, Ev.UP, node)
            return False
        return True

    def up(self, node: SimNode, t: float) -> bool:
        """The node takes runs from now; False if it was not booting (ended meanwhile)."""
        if node.state is not NodeState.BOOTING:
            return False
        self.set_state(node, NodeState.UP)
        node.up_at = self.last_up_at = node.idle_since = t
        if not node.reserved:  # a replacement holds slots for the runs it is for
            self.empty_up[node.name] = node
        self.update_open(node)
        self.dirty_placement = self.changed = True
        return True

    def complete(self, run: RunState, t: float) -> None:
        self.off_node(run, t)
        self.release_reservation(run)  # a replacement's slot it no longer needs
        self.remaining -= 1
        self.result.makespan_s = max(self.result.makespan_s, t)
        times = self.completed.setdefault(run.spec.experiment, [])
        times.append(t - run.started_at)  # the controller's note_completed: the last attempt's run time
        del times[:-KEEP_DURATIONS]
        self.completed_changed = True
        for dependent in run.dependents:
            dependent.unmet -= 1
            if dependent.unmet == 0 and dependent.arrived:
                self.enqueue(dependent)
        self.dirty_placement = True

    # ---------------------------------------------------------------- runs on nodes
    def start(self, run: RunState, node: SimNode, slots: tuple[int, ...], t: float) -> None:
        """An attempt of the run starts on `slots` of the node."""
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
        self.update_open(node)
        self.live_slots += run.slots
        self.events.push(t + run.overhead + max(0.0, run.spec.duration_s - run.saved), Ev.END, (run, run.attempt))
        self.changed = True

    def off_node(self, run: RunState, t: float) -> None:
        node = run.node
        assert node is not None
        del node.runs[run.gid]
        node.used.difference_update(run.slot_indices)
        node.version += 1
        run.node, run.slot_indices = None, ()
        self.live_slots -= run.slots
        self.result.busy_slot_seconds += (t - run.started_at) * run.slots
        if node.state is NodeState.UP:
            self.update_open(node)
            if not node.runs:
                node.idle_since = t
                if not node.reserved:
                    self.empty_up[node.name] = node
        self.changed = True

    def interrupt(self, run: RunState, t: float) -> None:
        """The attempt ends now: the progress up to its last checkpoint is kept, the rest is lost."""
        elapsed = t - run.started_at
        progress = max(0.0, elapsed - run.overhead)
        interval = self.c.checkpoint_interval_s
        if self.c.checkpoint_on_term:  # it saves its state on SIGTERM: a stop keeps everything
            kept = progress
        elif interval is None:
            kept = 0.0
        elif interval == 0:
            kept = progress
        else:
            kept = math.floor(progress / interval) * interval
        run.saved = min(run.spec.duration_s, run.saved + kept)
        self.result.lost_seconds += ((elapsed - run.overhead - kept) if kept > 0 else elapsed) * run.slots
        run.restarted = True
        run.attempt += 1  # its END event no longer matches
        self.off_node(run, t)
        self.enqueue(run)

    # ---------------------------------------------------------------- reserved slots
    def reserve(self, run: RunState, dest: SimNode) -> None:
        """ControllerState.reserve: the run's next attempt gets its slots on `dest` (a move's
        destination, or a replacement), no other run does; a former reservation is dropped."""
        self.release_reservation(run)
        run.move_to = dest
        dest.reserved += run.slots
        dest.version += 1
        self.moving[run.gid] = run
        self.update_open(dest)
        self.empty_up.pop(dest.name, None)

    def release_reservation(self, run: RunState) -> None:
        dest = run.move_to
        if dest is not None:
            dest.reserved -= run.slots
            dest.version += 1
            self.update_open(dest)
            if dest.state is NodeState.UP and not dest.runs and not dest.reserved:
                self.empty_up[dest.name] = dest
        run.move_to = None
        self.moving.pop(run.gid, None)

    def reserved_slots(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for run in self.moving.values():
            if run.move_to is not None:
                out[run.move_to.name] = out.get(run.move_to.name, 0) + run.slots
        return out

    # ---------------------------------------------------------------- nodes
    def set_state(self, node: SimNode, state: NodeState) -> None:
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
        self.events.push(t + latency.queue_s, Ev.BILL, node)
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

    def end_node(self, node: SimNode, t: float) -> None:
        """Released, timed out, emptied, drained or cancelled: it bills until now (nothing if pending)."""
        assert not node.runs
        if node.bill_from is not None:
            self.result.node_seconds += t - node.bill_from
        self.set_state(node, NodeState.GONE)
        del self.nodes[node.name]
        self.open.pop(node.name, None)
        self.empty_up.pop(node.name, None)
        for run in [r for r in self.moving.values() if r.move_to is node]:
            self.release_reservation(run)
        self.changed = self.dirty_placement = True

    def update_open(self, node: SimNode) -> None:
        """`open`: up nodes with a slot neither used nor reserved."""
        if node.state is NodeState.UP and len(node.used) + node.reserved < self.c.num_slots:
            self.open[node.name] = node
        else:
            self.open.pop(node.name, None)

    def accepting(self) -> int:
        counts = self.counts
        return counts[NodeState.PENDING] + counts[NodeState.BOOTING] + counts[NodeState.UP]

    def has_empty_accepting(self) -> bool:
        return bool(self.counts[NodeState.PENDING] or self.counts[NodeState.BOOTING] or self.empty_up)

    def slot_nodes(self, t: float) -> list[NodeSlots]:
        """ControllerState.slot_nodes: pending, booting and up nodes."""
        return [NodeSlots(n.name, self.c.name, self.c.num_slots, frozenset(n.used), accepting=n.state is NodeState.UP,
                          starting=n.state is not NodeState.UP,
                          time_left_s=None if n.limit_at is None else n.limit_at - t, surplus=n.name in self.surplus)
                for n in self.nodes.values()]
