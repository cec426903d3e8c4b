"""Nodes that are gone: a failed start, a lost worker, a job the scheduler ended.

Their attempts end as interrupted (never FAILED) once the node is known dead, and what the
backend can still reach of their process groups is killed, grandchildren included.
"""

from __future__ import annotations

import logging

import redis

from juqueue.backends.base import NodeBackend
from juqueue.broker.leases import Leases
from juqueue.controller.lifecycle import RunLifecycle
from juqueue.controller.publisher import Publisher
from juqueue.controller.state import ControllerState, NodeInfo
from juqueue.status import NodeState

log = logging.getLogger(__name__)


class NodeLoss:
    def __init__(self, state: ControllerState, lifecycle: RunLifecycle, backends: dict[str, NodeBackend],
                 publisher: Publisher, leases: Leases) -> None:
        self.s = state
        self.lifecycle = lifecycle
        self.backends = backends
        self.publisher = publisher
        self.leases = leases

    def node_failed(self, node: NodeInfo, reason: str, now: float) -> None:
        """The node could not start or refused to work: it bills nothing more, its runs requeue."""
        node.reason = reason
        self.settle_node_runs(node, reason, now)
        node.state = NodeState.FAILED
        node.ended_at = now
        self._close_billing(node, now)
        self.s.mark_node_dirty(node)

    def node_gone(self, node: NodeInfo, reason: str, now: float) -> None:
        self.settle_node_runs(node, reason, now)
        node.state = NodeState.GONE
        node.ended_at = now
        node.reason = reason
        self._close_billing(node, now)
        self.s.mark_node_dirty(node)
        self.s.dirty_placement = True

    def _close_billing(self, node: NodeInfo, now: float) -> None:
        """The billed interval ends at the scheduler's recorded end, else when the node was seen
        gone: exact for a local process (within a tick), marked estimated for a scheduler's job."""
        if node.billed_from is None or node.billed_until is not None:
            return
        backend = self.backends.get(node.backend)
        recorded = backend.recorded_end(node.job_id) if backend is not None else None
        node.billed_until = max(node.billed_from, recorded if recorded is not None else now)
        node.billed_estimated = recorded is None and backend is not None and backend.loss_confirmed_by_scheduler

    def settle_node_runs(self, node: NodeInfo, reason: str, now: float) -> None:
        """The node is confirmed dead: kill leftovers, end its attempts as interrupted."""
        s = self.s
        backend = self.backends.get(node.backend)
        for gid in list(node.runs) + list(s.pending_exits.get(node.name, ())):
            run = s.runs.get(gid)
            if run is None or not run.status.is_live or run.node != node.name:
                continue
            if backend is not None and run.pid:
                backend.kill_run_group(run.pid, run.pstart)
            if run.exit_pending is not None:
                code, ended, _ = run.exit_pending
                self.lifecycle.end_attempt(run, code, ended, True, f"node lost: {reason}", node.name)
                continue
            self.leases.fence(gid)
            self.leases.release(gid, run.attempt, node.name)
            self.lifecycle.end_attempt(run, -1, now, True, f"node lost: {reason}", node.name)
        node.runs.clear()
        node.slot_of.clear()
        try:
            self.publisher.delete_queue(node.name)
        except redis.RedisError:
            pass
