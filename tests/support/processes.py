"""Ports and processes of a test or benchmark: a free port, whether a pid lives, a work dir's processes."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

from juqueue import processes


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (a zombie's pid still answers signal 0)."""
    return processes.pid_alive(pid, zombie_is_dead=True)


def work_dir_pids(work_dir: Path) -> list[int]:
    """Live processes that belong to a work dir: its path in their command line or environment
    (workers, runs and the embedded broker of a `serve` on it); never this process."""
    me, needle, found = os.getpid(), str(work_dir).encode(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            blob = (entry / "cmdline").read_bytes()
            try:
                blob += (entry / "environ").read_bytes()
            except OSError:
                pass
        except OSError:
            continue
        if needle in blob and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
