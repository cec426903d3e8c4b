"""Run lifecycle names shared by the store, the API, the CLI and the dashboard."""

from __future__ import annotations

from enum import Enum


class RunStatus(str, Enum):
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
