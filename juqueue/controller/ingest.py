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
from juqueue.events import EXITED, HEARTBEAT, NODE_FAILED, REJECTED, STARTED, Event, parse_checkpoints
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
        # (global id, attempt) -> the first heartbeat (worker clock) that no longer listed a
        # started attempt whose end nothing records (see _settle_unreported)
        self._unlisted_since: dict[tuple[str, int], float] = {}

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

    def _kill_stray_start(self, ev: Event) -> None:
        """A process started for an attempt that is no longer live here: its `started` event was
        read only after the attempt had been ended (a `serve` killed just after publishing it: the
        restart ended the node, not knowing the process), or after a newer attempt. At most one live
        attempt: its group is killed (guarded against pid reuse by its start time)."""
        if not ev.pid:
            return
        node = self.s.nodes.get(ev.node)
        kind = node.backend if node is not None else self.s.store.node_backend(ev.node)
        backend = self.fleet.backends.get(kind) if kind else None
        if backend is not None:
            log.warning("%s attempt %s started on %s after it was ended: its process group %s is killed",
                        ev.global_id, ev.attempt, ev.node, ev.pid)
            backend.kill_run_group(ev.pid, ev.pstart)

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
        if run is None or run.attempt != ev.attempt or run.status not in (RunStatus.ASSIGNED, RunStatus.RUNNING):
            self._kill_stray_start(ev)
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

    def _note_checkpoints(self, ev: Event) -> None:
        """The last checkpoint each attempt's run reported (its checkpoint file's mtime), kept on
        the attempt; the cost of moving the run is counted from it. Written only when it changed."""
        for (gid, attempt), at in parse_checkpoints(ev.checkpoints).items():
            run = self.s.runs.get(gid)
            if run is None or run.attempt != attempt or not run.status.is_live or run.checkpoint_at == at:
                continue
            if run.checkpoint_at is not None and at < run.checkpoint_at:
                continue  # an older report (events of one node arrive in order; this is a re-read)
            run.checkpoint_at = at
            self.s.attempt_columns(run)["last_checkpoint_at"] = at

    def _on_exited(self, ev: Event, now: float) -> None:
        s = self.s
        if ev.checkpoints:
            self._note_checkpoints(ev)
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
        if ev.checkpoints:
            self._note_checkpoints(ev)
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
                continue
            # Nothing records its end: it ended while the broker was away and its exit file could not
            # be written (a full disk), or the worker dropped it. Its worker no longer holds it, so it
            # is over; once a heartbeat a grace later still does not list it (an exit event may be on
            # its way), it is an interruption: the run goes again without spending a retry.
            since = self._unlisted_since.setdefault((gid, run.attempt), ev.ts)
            if ev.ts > since + self.s.message_grace(node):
                del self._unlisted_since[(gid, run.attempt)]
                log.warning("%s attempt %s: node %s no longer runs it and its end was not recorded; requeued",
                            gid, run.attempt, node.name)
                self.lifecycle.end_attempt(run, -1, now, True, "its end was lost (no exit event, no exit file)", node.name)
        for gid, attempt in [k for k in self._unlisted_since if k[0] in node.runs or k[0] not in self.s.runs]:
            run = self.s.runs.get(gid)
            if run is None or run.attempt != attempt or f"{gid}|{attempt}" in reported or run.exit_pending is not None:
                del self._unlisted_since[(gid, attempt)]

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
