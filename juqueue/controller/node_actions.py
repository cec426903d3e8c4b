"""A user's drain or stop of one node (`POST /api/nodes/<name>/drain|stop`, `juqueue node`).

Drain: the node takes no new run (DRAINING; placement, consolidation and replacements only
use accepting nodes) and is released as soon as it is empty. The drain is written in the
node's `reason` (`records.USER_DRAIN_MARK`), so it outlives a restart, and nothing turns a draining
node back to accepting. Stop: the fleet's two-phase node stop with `StopReason.NODE_STOP`,
so its runs are interrupted and queued again without spending a retry.

Runs on the controller thread (through `Controller.call`), like every user action.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum

from juqueue.backends.base import NodeBackend
from juqueue.controller.fleet import Fleet
from juqueue.controller.node_loss import NodeLoss
from juqueue.controller.records import NodeInfo
from juqueue.controller.state import ControllerState
from juqueue.status import NodeState, StopReason

log = logging.getLogger(__name__)

__all__ = ["NodeActions", "NodeOutcome", "NodeActionResult"]


class NodeOutcome(str, Enum):
    DONE = "done"  # the node changed
    ALREADY = "already"  # it was drained (or stopping) already: nothing changed
    REFUSED = "refused"  # a live node that cannot take this action (a stopping node cannot drain)
    NOT_LIVE = "not_live"  # not a live node (ended, or never existed): the API looks in the store


@dataclass(frozen=True)
class NodeActionResult:
    outcome: NodeOutcome
    detail: str = ""
    node: dict | None = None  # the node as the API shows it, after the action


def _because(action: str, why: str | None) -> str:
    why = (why or "").strip()
    return f"{action} by user" + (f" ({why[:200]})" if why else "")


class NodeActions:
    def __init__(self, state: ControllerState, fleet: Fleet, loss: NodeLoss, backends: dict[str, NodeBackend]) -> None:
        self.s = state
        self.fleet = fleet
        self.loss = loss
        self.backends = backends

    def drain(self, name: str, why: str | None = None) -> NodeActionResult:
        """Take no new run; go once empty (`release_drained`). Idempotent on a draining node."""
        node = self.s.nodes.get(name)
        if node is None or not node.state.is_live:
            return NodeActionResult(NodeOutcome.NOT_LIVE)
        if node.state == NodeState.STOPPING:
            return NodeActionResult(NodeOutcome.REFUSED, f"node {name} is already stopping ({node.reason or 'no reason recorded'})")
        if node.drained_by_user:
            return NodeActionResult(NodeOutcome.ALREADY, f"node {name} is already drained ({node.reason})")
        words = _because("drained", why)
        # A node draining for another cause (wall time, consolidation, a removed cluster) keeps
        # that cause in front: consolidation recognises its own drains by it after a restart.
        node.reason = f"{node.reason}; {words}" if node.state == NodeState.DRAINING and node.reason \
            else f"draining: {words}"
        node.state = NodeState.DRAINING
        self.s.mark_node_dirty(node)
        self.s.dirty_placement = True
        log.info("node %s: %s", name, node.reason)
        self.release_drained(self.s.now())
        return NodeActionResult(NodeOutcome.DONE, node.reason)

    def stop(self, name: str, why: str | None = None) -> NodeActionResult:
        """Interrupt its runs (queued again, no retry spent) and end the node. Idempotent on a stopping node."""
        node = self.s.nodes.get(name)
        if node is None or not node.state.is_live:
            return NodeActionResult(NodeOutcome.NOT_LIVE)
        if node.state == NodeState.STOPPING:
            return NodeActionResult(NodeOutcome.ALREADY, f"node {name} is already stopping ({node.reason or 'no reason recorded'})")
        log.info("node %s: %s", name, _because("stopped", why))
        self._release(node, _because("stopped", why), self.s.now())
        self.s.dirty_placement = True
        return NodeActionResult(NodeOutcome.DONE, node.reason or "")

    def release_drained(self, now: float) -> None:
        """Every node a user drained goes once it holds no run and no exit awaits its heartbeat."""
        s = self.s
        for node in [n for n in s.nodes.values() if n.drained_by_user]:
            if not node.runs and not s.pending_exits.get(node.name):
                self._release(node, "drained by user, now empty", now)

    def _release(self, node: NodeInfo, detail: str, now: float) -> None:
        backend = self.backends.get(node.backend)
        if node.up_at is None and not node.runs and backend is not None and backend.loss_confirmed_by_scheduler \
                and node.state in (NodeState.PENDING, NodeState.STARTING, NodeState.DRAINING):
            # A job that never came up bills nothing once cancelled: cancel it now.
            backend.stop_node(node.name, node.job_id, node.pid)
            self.loss.node_gone(node, f"{detail}: cancelled before it started", now)
            return
        self.fleet.request_node_stop(node, StopReason.NODE_STOP, detail, now)
