"""Event ingest: what workers report on the stream (started, exited, heartbeat, rejected,
node failed) applied to memory and the pending batch.

An exit is final only once its node shows life after it (its next heartbeat): SLURM's
SIGTERM reaches a run and its worker at once, so an exit 0 may be a kill in disguise.
"""

from __future__ import annotations

import logging

from juqueue.controller.fleet import Fleet
from juqueue.controller.lifecycle import RunLifecycle
from juqueue.controller.node_loss import NodeLoss
from juqueue.controller.publisher import Publisher
from juqueue.controller.state import ControllerState, NodeInfo
from juqueue.events import EXITED, HEARTBEAT, NODE_FAILED, REJECTED, STARTED, Event
from juqueue.status import NodeState, RunStatus, StopReason
from juqueue.version import __version__

log = logging.getLogger(__name__)


class EventIngest:
    def __init__(self, state: ControllerState, lifecycle: RunLifecycle, fleet: Fleet, loss: NodeLoss, publisher: Publisher) -> None:
        self.s = state
        self.lifecycle = lifecycle
        self.fleet = fleet
        self.loss = loss
        self.publisher = publisher

    def apply(self, ev: Event, now: float) -> None:
        if ev.type == STARTED:
            self._on_started(ev)
        elif ev.type == EXITED:
            self._on_exited(ev, now)
        elif ev.type == HEARTBEAT:
            self._on_heartbeat(ev, now)
        elif ev.type == REJECTED:
            self._on_rejected(ev, now)
        elif ev.type == NODE_FAILED:
            node = self.s.nodes.get(ev.node)
            if node is not None:
                node.reason = ev.reason
                self.s.mark_node_dirty(node)

    def _on_rejected(self, ev: Event, now: float) -> None:
        s = self.s
        run = s.runs.get(ev.global_id)
        node = s.nodes.get(ev.node)
        if ev.no_devices and run is not None and run.cluster in s.health:
            s.health[run.cluster].devices_missing = True
        if ev.no_devices and node is not None and not node.no_devices:
            node.no_devices = True
            node.reason = f"no CUDA devices ({ev.reason})"
            s.mark_node_dirty(node)
        if run is not None and ev.work_dir:
            self._work_dir_failed(run.cluster, ev.reason, now)
        if run is not None and run.attempt == ev.attempt and run.status == RunStatus.ASSIGNED:
            self.lifecycle.end_attempt(run, 0, now, True, f"rejected by {ev.node}: {ev.reason}", ev.node)

    def _work_dir_failed(self, cluster: str, reason: str, now: float) -> None:
        health = self.s.health.get(cluster)
        if health is not None:
            health.work_dir_failed(reason if reason.startswith("work dir") else f"work dir: {reason}", now)
            log.error("cluster %s paused: %s", cluster, health.paused_reason)

    def _on_started(self, ev: Event) -> None:
        s = self.s
        run = s.runs.get(ev.global_id)
        if run is None or run.attempt != ev.attempt:
            return
        run.pid, run.pstart, run.started, run.started_ts = ev.pid, ev.pstart, True, ev.ts
        s.attempt_columns(run).update({"slot": ev.slot, "pid": ev.pid, "pgid_start": ev.pstart, "started_at": ev.ts, "node": ev.node})
        health = s.health.get(run.cluster)
        if health is not None:
            health.attempt_started()
            if run.needs_cuda:
                health.device_probes, health.devices_missing = 0, False
        if run.status == RunStatus.ASSIGNED:
            run.status = RunStatus.RUNNING
            run.started_at = ev.ts
            s.mark_run_dirty(run)
            s.batch.event(run.gid, "running", ev.attempt, ev.node, f"slot {ev.slot}, pid {ev.pid}", ev.ts)
        node = s.nodes.get(ev.node)
        if node is not None:
            node.device_probe = False  # it ran something: it has shown what it has
        if node is not None and node.state == NodeState.STARTING:
            self.fleet.node_up(node, ev.ts)

    def _on_exited(self, ev: Event, now: float) -> None:
        s = self.s
        run = s.runs.get(ev.global_id)
        if run is None or run.attempt != ev.attempt or not run.status.is_live:
            s.batch.attempts.setdefault((ev.global_id, ev.attempt), {}).update({"ended_at": ev.ts, "exit_code": ev.exit_code})
            return
        node = s.nodes.get(ev.node)
        if node is not None:
            node.release(run.gid)
            self._note_node_flags(node, ev, now)
            s.maybe_idle(node, now)
            s.dirty_placement = True
        if ev.work_dir:
            self._work_dir_failed(run.cluster, ev.reason, now)
        if ev.interrupted and run.stop_reason is None and not ev.work_dir:
            draining = node is not None and node.state == NodeState.DRAINING
            self.lifecycle.record_stop(run, StopReason.WALL_TIME if draining else StopReason.NODE_STOP, ev.reason or "node stopping")
        # A run that ended before a move's SIGTERM reached it decides itself (it must not rerun).
        if ev.interrupted or run.stop_reason not in (None, StopReason.MOVE):
            self.lifecycle.end_attempt(run, ev.exit_code, ev.ts, True, run.stop_detail or ev.reason or "node stopping", ev.node)
        elif node is None or node.state in (NodeState.STOPPING, NodeState.GONE):
            self.lifecycle.end_attempt(run, ev.exit_code, ev.ts, True, "node going away", ev.node)
        else:
            run.exit_pending = (ev.exit_code, ev.ts, ev.node)
            run.exit_detail = ev.reason or None
            s.pending_exits.setdefault(ev.node, set()).add(run.gid)

    def _on_heartbeat(self, ev: Event, now: float) -> None:
        s = self.s
        node = s.nodes.get(ev.node)
        if node is None:
            return
        node.last_heartbeat = now
        if ev.version and ev.version != __version__:
            node.reason = f"worker runs JuQueue {ev.version}, the controller {__version__}"
            self.publisher.send_control(node.name, {"op": "shutdown", "reason": node.reason})
            self.loss.node_failed(node, node.reason, now)
            return
        if node.state == NodeState.STARTING:
            self.fleet.node_up(node, now)
        self._note_node_flags(node, ev, now)
        s.note_heartbeat(node)  # written with the next tick's batch, not one UPDATE per heartbeat
        self._settle_unreported(node, ev, now)
        self._settle_lost_messages(node, ev, now)
        backend = self.fleet.backends.get(node.backend)
        settle = backend.exit_settle_s if backend is not None else 0.0
        for gid in list(s.pending_exits.get(node.name, ())):
            run = s.runs.get(gid)
            if run is None or run.exit_pending is None or run.exit_pending[2] != node.name:
                continue
            code, ended, _ = run.exit_pending
            if not ev.stopping and ev.ts < ended + settle:
                continue  # too soon to tell a completion from a kill: the next heartbeat decides
            self.lifecycle.end_attempt(run, code, ended, ev.stopping, "node stopping" if ev.stopping else None, node.name)

    def _settle_unreported(self, node: NodeInfo, ev: Event, now: float) -> None:
        """A started attempt the worker no longer lists has ended: if its exit event was lost
        (the broker was down when it was sent), its exit file still tells how."""
        reported = set(ev.running)
        for gid in list(node.runs):
            run = self.s.runs.get(gid)
            if run is None or not run.started or run.exit_pending is not None or f"{gid}|{run.attempt}" in reported:
                continue
            if run.started_ts is None or run.started_ts >= ev.ts:
                continue  # started after the worker took this list: not a sign of anything
            if self.lifecycle.settle_from_exit_file(run, now):
                log.info("%s attempt %s: exit event lost, settled from its exit file", gid, run.attempt)

    def _settle_lost_messages(self, node: NodeInfo, ev: Event, now: float) -> None:
        """An assigned attempt its up node still does not list in a heartbeat taken after its
        deadline lost its message (a worker drops what it had prefetched when the broker goes
        away; a Redis reset loses queued ones): fenced, if still unclaimed, and requeued. One the
        node lists is running: its own events decide it. Never both: at most one live attempt."""
        if node.state not in (NodeState.UP, NodeState.DRAINING):
            return
        listed = set(ev.running)
        for gid in list(node.runs):
            run = self.s.runs.get(gid)
            if run is None or run.status != RunStatus.ASSIGNED or run.node != node.name or run.unlisted_deadline is None:
                continue
            if f"{gid}|{run.attempt}" in listed:
                continue
            deadline = run.unlisted_deadline
            if not (now > deadline and ev.ts > deadline):
                continue
            # It may have run and ended while both its events were lost (a broker reset between
            # them): its exit file says so, and it must not run again.
            if self.lifecycle.settle_from_exit_file(run, now):
                log.info("%s attempt %s: started and exit events lost, settled from its exit file", gid, run.attempt)
                continue
            if self.loss.leases.fence_unclaimed(gid, run.attempt):
                log.warning("%s attempt %s: its message was lost (node %s never listed it); requeued", gid, run.attempt, node.name)
                self.lifecycle.end_attempt(run, 0, now, True, "its message was lost before it started", node.name)

    def _note_node_flags(self, node: NodeInfo, ev: Event, now: float) -> None:
        """A worker that says it is draining or going away takes no new runs."""
        if ev.stopping and node.state in (NodeState.STARTING, NodeState.UP, NodeState.DRAINING):
            node.state = NodeState.STOPPING
            node.reason = node.reason or "worker shutting down"
            node.stop_sent_at = node.stop_sent_at or now
            self.s.mark_node_dirty(node)
            self.s.dirty_placement = True
        elif ev.draining and node.state in (NodeState.STARTING, NodeState.UP):
            node.state = NodeState.DRAINING
            node.reason = "draining (wall time near)"
            self.s.mark_node_dirty(node)
            self.s.dirty_placement = True
