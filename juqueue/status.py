"""Run lifecycle names shared by the store, the API, the CLI and the dashboard."""

from __future__ import annotations

from enum import Enum


class RunStatus(str, Enum):
    HELD = "held"  # exists, is no demand, waits for `release` or `resume` (the original's "inactive")
    QUEUED = "queued"
    ASSIGNED = "assigned"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)

    @property
    def is_live(self) -> bool:
        """ASSIGNED or RUNNING: an attempt may exist somewhere."""
        return self in (RunStatus.ASSIGNED, RunStatus.RUNNING)


class NodeState(str, Enum):
    PENDING = "pending"  # committed in the store, not yet submitted/started
    STARTING = "starting"  # submitted / process started, worker not yet heard from
    UP = "up"
    DRAINING = "draining"  # takes no new runs (wall time near, or being stopped)
    STOPPING = "stopping"
    GONE = "gone"
    FAILED = "failed"  # could not be started (sbatch rejected, worker died at start)

    @property
    def is_live(self) -> bool:
        return self in (NodeState.PENDING, NodeState.STARTING, NodeState.UP, NodeState.DRAINING, NodeState.STOPPING)


class EndReason(str, Enum):
    """Why an attempt ended. Only EXITED decides the run; the rest requeue it."""

    EXITED = "exited"
    INTERRUPTED = "interrupted"
    CANCELLED = "cancelled"


class StopReason(str, Enum):
    """Why JuQueue stopped an attempt: stored on the attempt, shown to users.

    Declared strongest first: when two apply (a user cancels a run that a drain is already
    stopping) the stronger one wins, so a cancel is never turned into a requeue.
    """

    CANCEL = "cancel"
    REDEFINED = "redefined"  # its definition changed (or left its file): it reruns with the new one
    SERVER_STOP = "server_stop"
    NODE_STOP = "node_stop"
    WALL_TIME = "wall_time"
    DRAIN = "drain"
    MOVE = "move"

    @property
    def strength(self) -> int:
        return len(_STOP_ORDER) - _STOP_ORDER.index(self)

    def stronger(self, other: "StopReason | None") -> "StopReason":
        """The reason that wins when `other` was already recorded."""
        if other is None or self.strength >= other.strength:
            return self
        return other


_STOP_ORDER = list(StopReason)
