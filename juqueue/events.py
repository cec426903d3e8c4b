"""Run events on the Redis stream: the names and the encoding, shared by workers and controller.

Pure: no Redis here. A stream entry is a flat str->str mapping.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import ClassVar

STARTED = "started"
EXITED = "exited"
REJECTED = "rejected"  # a message the worker would not start (draining, no slot): never started
HEARTBEAT = "heartbeat"
NODE_FAILED = "node_failed"  # a worker that cannot work (version, start failure) says why
WAKE = "wake"  # the API asks the controller to look at its command queue


@dataclass
class Event:
    type: str
    node: str = ""
    ts: float = 0.0
    global_id: str = ""
    attempt: int = 0
    slot: int = -1
    pid: int = 0
    pstart: int = 0  # the group leader's start time in clock ticks
    exit_code: int = 0
    interrupted: bool = False  # the worker knew it was stopping this attempt / shutting down
    stopping: bool = False  # heartbeat: the node is going away
    draining: bool = False
    running: list[str] = field(default_factory=list)  # heartbeat: "gid|attempt"
    version: str = ""
    reason: str = ""
    work_dir: bool = False  # rejected/exited: the work dir refused a write (ENOSPC, EACCES, ...)
    no_devices: bool = False  # rejected: the run needs CUDA devices this node does not have
    # heartbeat, exited: "gid|attempt|mtime" of the attempts whose $JUQUEUE_CHECKPOINT_FILE exists
    checkpoints: list[str] = field(default_factory=list)

    _ints: ClassVar[set[str]] = {"attempt", "slot", "pid", "pstart", "exit_code"}
    _bools: ClassVar[set[str]] = {"interrupted", "stopping", "draining", "work_dir", "no_devices"}

    def encode(self) -> dict[str, str]:
        """Only fields that differ from their defaults travel (this runs twice per run)."""
        out: dict[str, str] = {"type": self.type}
        for key, default in _DEFAULTS.items():
            value = getattr(self, key)
            if value == default:
                continue
            if key in _LISTS:
                out[key] = ",".join(value)
            elif isinstance(value, bool):
                out[key] = "1" if value else "0"
            else:
                out[key] = str(value)
        return out

    @classmethod
    def decode(cls, data: dict[str, str]) -> "Event":
        kwargs: dict[str, object] = {}
        names = {f.name for f in fields(cls)}
        for key, raw in data.items():
            if key not in names:
                continue
            if key in cls._ints:
                kwargs[key] = int(raw)
            elif key in cls._bools:
                kwargs[key] = raw == "1"
            elif key == "ts":
                kwargs[key] = float(raw)
            elif key in _LISTS:
                kwargs[key] = [item for item in raw.split(",") if item]
            else:
                kwargs[key] = raw
        return cls(**kwargs)  # type: ignore[arg-type]


_LISTS = ("running", "checkpoints")  # comma-separated on the stream (gids hold no comma)


def checkpoint_entry(global_id: str, attempt: int, mtime: float) -> str:
    """One item of `Event.checkpoints`."""
    return f"{global_id}|{attempt}|{mtime:.3f}"


def parse_checkpoints(items: list[str]) -> dict[tuple[str, int], float]:
    """`Event.checkpoints` as (gid, attempt) -> mtime; malformed items are skipped."""
    out: dict[tuple[str, int], float] = {}
    for item in items:
        parts = item.rsplit("|", 2)
        if len(parts) != 3:
            continue
        try:
            out[(parts[0], int(parts[1]))] = float(parts[2])
        except ValueError:
            continue
    return out


_DEFAULTS: dict[str, object] = {
    f.name: (f.default if f.default is not MISSING else []) for f in fields(Event) if f.name != "type"
}
