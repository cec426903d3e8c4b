"""The small interface every node backend offers; only these calls differ between
`local` and `slurm` (the local backend is the fake that reuses everything else)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from juqueue.definitions.models import ClusterSpec
from juqueue.errors import JuQueueError


class BackendError(JuQueueError):
    """A node could not be started or stopped; the message is shown in the node's record."""


@dataclass
class StartedNode:
    job_id: str | None = None
    pid: int | None = None
    time_limit_s: float | None = None
    billing_from: float | None = None  # when it began to bill, if known at start (a local process)


@dataclass
class NodeLiveness:
    alive: bool
    reason: str = ""
    time_left_s: float | None = None
    started_at: float | None = None  # when the scheduler started the job (it bills from then)


class NodeBackend(Protocol):
    kind: str
    # Its nodes are processes of this host that stop with `serve`: the controller stops them
    # when it starts again, and kills a lost worker's run groups itself.
    dies_with_server: bool
    # A node's loss is confirmed by a scheduler: a silent node's job is cancelled and its runs
    # requeued only once the scheduler shows it gone; a start may wait in its queue.
    loss_confirmed_by_scheduler: bool
    # Seconds after a run's exit before its node's heartbeat may make the exit final: a scheduler
    # that ends a job signals the runs and the worker at once, and the worker needs a moment to
    # learn it is stopping (an exit 0 then is a kill in disguise, not a completion).
    exit_settle_s: float

    def start_node(self, cluster: ClusterSpec, node: str, token: str) -> StartedNode: ...

    def stop_node(self, node: str, job_id: str | None, pid: int | None) -> None: ...

    def kill_run_group(self, pid: int, start_time: int | None) -> None:
        """Kill a run's process group (grandchildren included) when this backend can reach it."""
        ...

    def recorded_end(self, job_id: str | None) -> float | None:
        """When the scheduler's accounting says the node's job ended; None if it cannot say."""
        ...

    def liveness(self, nodes: dict[str, tuple[str | None, int | None]]) -> dict[str, NodeLiveness]:
        """One call for all nodes of this backend: name -> (job_id, pid) in, state out."""
        ...
