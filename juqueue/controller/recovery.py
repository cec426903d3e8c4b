"""Recovery: memory rebuilt from the store (at start, and after a commit the store refused),
and Redis made to agree with the store after it lost its state.

The store is the truth. At start, nodes whose processes die with the server are stopped and
their attempts settled; a rebuild in a running controller keeps every node as it is.
"""

from __future__ import annotations

import json
import logging

from juqueue.backends.base import NodeBackend
from juqueue.broker.event_stream import EventStream, Generation
from juqueue.broker.leases import Leases
from juqueue.controller.lifecycle import RunLifecycle
from juqueue.controller.node_loss import NodeLoss
from juqueue.controller.state import ControllerState, NodeInfo, RunState
from juqueue.policy.slot_placement import pick_slots
from juqueue.status import RunStatus, StopReason

log = logging.getLogger(__name__)


class Recovery:
    def __init__(self, state: ControllerState, lifecycle: RunLifecycle, loss: NodeLoss, backends: dict[str, NodeBackend],
                 stream: EventStream, leases: Leases, generation: Generation) -> None:
        self.s = state
        self.lifecycle = lifecycle
        self.loss = loss
        self.backends = backends
        self.stream = stream
        self.leases = leases
        self.generation = generation

    def load(self, at_start: bool) -> None:
        """Resume exactly: rebuild memory from the store, settle every attempt whose node is gone."""
        s = self.s
        self.stream.ensure_group()
        now = s.now()
        for row in s.store.live_nodes():
            s.nodes[row.name] = NodeInfo.from_row(row)
        for values in s.store.iter_active_runs(RunState.COLUMNS):
            run = RunState.from_values(values)
            s.runs[run.gid] = run
            if run.status == RunStatus.ASSIGNED and run.node in s.nodes:
                run.unlisted_deadline = now + s.message_grace(s.nodes[run.node])
        live = [r for r in s.runs.values() if r.status.is_live]
        attempts = s.store.latest_attempts((r.gid, r.attempt) for r in live)
        unknown_slots: list[RunState] = []
        for run in live:
            att = attempts.get((run.gid, run.attempt))
            slots = _attempt_slots(att)
            if run.node in s.nodes:
                if slots:
                    s.nodes[run.node].take(run.gid, slots)
                else:
                    unknown_slots.append(run)
            if att is not None:
                run.pid, run.pstart, run.started, run.started_ts = att.pid, att.pgid_start, att.started_at is not None, att.started_at
                run.checkpoint_at = att.last_checkpoint_at
                stop_reason = getattr(att, "stop_reason", None)
                if stop_reason:
                    run.stop_reason, run.stop_detail = StopReason(stop_reason), att.stop_requested
                elif att.stop_requested:  # a store written before stop reasons were recorded
                    run.stop_detail = att.stop_requested
                    run.stop_reason = StopReason.CANCEL if att.stop_requested.startswith("cancel") else StopReason.NODE_STOP
        for run in unknown_slots:  # an attempt recorded before slots were: the lowest free indices
            node = s.nodes[run.node]  # type: ignore[index]
            used = node.used_slots()
            node.take(run.gid, pick_slots([i for i in range(node.slots_total) if i not in used], run.slots) or ())
        if at_start:
            for node in list(s.nodes.values()):
                backend = self.backends.get(node.backend)
                if backend is None or backend.dies_with_server:
                    if backend is not None:
                        backend.stop_node(node.name, node.job_id, node.pid)
                    self.loss.node_gone(node, "server restarted" if backend is not None else "backend unknown", now)
        self.lifecycle.prefetch_statuses(d for r in s.runs.values() for d in r.depends_on)
        for run in list(s.runs.values()):
            if run.status == RunStatus.QUEUED:
                self.lifecycle.enqueue(run)
        # Nodes of a scheduler: the backend's liveness settles them on the first tick.
        for run in list(s.runs.values()):
            if run.status.is_live:
                self.lifecycle.settle_from_exit_file(run, now)
        self.reset_redis_view(now)
        s.dirty_placement = True
        s.commit()

    def reset_redis_view(self, now: float) -> None:
        """Make Redis agree with the store: fencing keys for live attempts, a new generation."""
        self.stream.ensure_group()
        self.leases.set_current_many({r.gid: r.attempt for r in self.s.runs.values() if r.status.is_live})
        self.generation.reset(now)

    def check_redis(self, now: float) -> None:
        """Redis flushed, restarted empty or back from an old AOF: rebuild its view from the store."""
        if self.generation.advance(now):
            return
        log.warning("Redis lost its state: reconciling from the store")
        for run in list(self.s.runs.values()):
            if run.status == RunStatus.ASSIGNED and run.node:
                # Its message may have died with Redis, or its `started` event: which one, only its
                # node can tell. A heartbeat taken after now that does not list it settles it (ingest).
                run.unlisted_deadline = now
            elif run.status == RunStatus.ASSIGNED:
                self.leases.fence(run.gid)
                self.lifecycle.end_attempt(run, 0, now, True, "broker reset", run.node)
            elif run.status == RunStatus.RUNNING:
                self.lifecycle.settle_from_exit_file(run, now)
        self.reset_redis_view(now)
        self.s.dirty_placement = True


def _attempt_slots(att) -> tuple[int, ...]:  # type: ignore[no-untyped-def]
    """The slot indices the store recorded for an attempt (schema 4), else its one `slot`."""
    if att is None:
        return ()
    raw = getattr(att, "slots", None)
    if raw:
        try:
            return tuple(int(i) for i in json.loads(raw))
        except (ValueError, TypeError):
            pass
    return (att.slot,) if att.slot is not None else ()
