"""A run's process group, named by its leader's pid and start time.

Each run is the leader of its own process group. The group id alone is not a safe name:
once the group is gone the pid can be reused, so the leader's start time travels with it
(in the STARTED event and the store). The worker that started the run and the controller
that learns the worker died both stop runs through these functions, so both apply the
same pid-reuse guard and both reach grandchildren. This module imports nothing of
JuQueue, so the controller side can use it without importing `juqueue.workers`.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path


def read_stat(pid: int) -> tuple[str, list[str]]:
    """`/proc/<pid>/stat` as (comm, the fields after comm); raises OSError when unreadable.

    comm may hold spaces and parentheses, so the fields start after the last ')'.
    """
    raw = Path(f"/proc/{pid}/stat").read_text()
    comm = raw[raw.index("(") + 1: raw.rindex(")")]
    return comm, raw.rsplit(")", 1)[1].split()


def process_start_time(pid: int) -> int | None:
    """Start time of `pid` in clock ticks since boot (field 22 of /proc/pid/stat); None when
    there is no such process, or it cannot be read."""
    try:
        _comm, fields = read_stat(pid)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return int(fields[19])


def group_alive(pgid: int) -> bool:
    """Whether any member of the group lives (a group of another user counts as alive)."""
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def signal_group(pgid: int, start_time: int | None, sig: int) -> bool:
    """Signal a run's process group; False when it is already gone.

    While any member lives the kernel keeps the group's id from being reused, so once
    the leader is gone the group can be signalled safely; a live leader with another
    start time means the pid was reused and the group is gone. A falsy `start_time`
    skips that check (the caller knows the group is its own). pgid 0 and 1 are never
    signalled: 0 would be the caller's own group.
    """
    if pgid <= 1:
        return False
    if start_time:
        current = process_start_time(pgid)
        if current is not None and current != start_time:
            return False
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False


def kill_group(pgid: int, start_time: int | None) -> bool:
    """SIGKILL the whole group, grandchildren included (see `signal_group`)."""
    return signal_group(pgid, start_time, signal.SIGKILL)
