"""When the embedded broker may end: the ledger of what it serves, and the pure decision.

The broker outlives `serve` on purpose (SLURM jobs keep their leases on it; a restarted `serve`
adopts it), so something beside it must end it once nothing needs it any more: the watcher
(`juqueue.broker.watcher`). It reads the ledger `serving.json` in the broker's directory, which
`serve` keeps current: the server's own pid (None once it stopped) and the live nodes (SLURM
job ids, local worker pids), and the grace. The broker is in use while the server or any of those
nodes lives; unused for the whole grace, it shuts down (its AOF kept). The grace lets a `serve`
restarted after a crash adopt the broker and its jobs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from juqueue.paths import WorkDir, read_json, write_json_atomic

LEDGER_NAME = "serving.json"


@dataclass(frozen=True)
class ProcessRef:
    """A process named by pid and start time (clock ticks since boot), so a reused pid is not it."""

    pid: int
    start_time: int | None = None


@dataclass(frozen=True)
class ServedNode:
    """One node whose worker uses the broker: a SLURM job, or a local worker process."""

    node: str
    backend: str
    job_id: str | None = None
    pid: int | None = None
    start_time: int | None = None


@dataclass(frozen=True)
class Ledger:
    server: ProcessRef | None = None
    grace_s: float = 300.0
    nodes: tuple[ServedNode, ...] = field(default_factory=tuple)

    def to_json(self) -> dict:
        return {"server": asdict(self.server) if self.server else None, "grace_s": self.grace_s,
                "nodes": [asdict(n) for n in self.nodes]}

    @classmethod
    def from_json(cls, data: dict | None) -> "Ledger":
        """A missing or damaged file is an empty ledger (no server, no node)."""
        if not isinstance(data, dict):
            return cls()
        try:
            server = data.get("server")
            return cls(server=ProcessRef(**server) if isinstance(server, dict) else None,
                       grace_s=float(data.get("grace_s", 300.0)),
                       nodes=tuple(ServedNode(**n) for n in data.get("nodes") or [] if isinstance(n, dict)))
        except (TypeError, ValueError):
            return cls()


def ledger_path(work: WorkDir) -> Path:
    return work.broker_dir / LEDGER_NAME


def read_ledger(work: WorkDir) -> Ledger:
    return Ledger.from_json(read_json(ledger_path(work)))


def write_ledger(work: WorkDir, ledger: Ledger) -> None:
    write_json_atomic(ledger_path(work), ledger.to_json(), mode=0o600)


def check_interval(grace_s: float) -> float:
    """How often the watcher looks: a fifth of the grace, between 0.5 and 15 s."""
    return max(0.5, min(15.0, grace_s / 5))


def decide(in_use: bool, idle_since: float | None, now: float, grace_s: float) -> tuple[float | None, bool]:
    """(the new idle_since, whether the broker should end now). In use resets the idle clock;
    unused, the clock starts, and the broker ends once it has run for the whole grace."""
    if in_use:
        return None, False
    since = now if idle_since is None else idle_since
    return since, now - since >= grace_s
