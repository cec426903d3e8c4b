"""Whether a process lives, by pid: one answer for the server registry, the reaper and tests."""

from __future__ import annotations

import os

from juqueue.process_group import read_stat


def pid_alive(pid: int | None, *, zombie_is_dead: bool = False) -> bool:
    """A pid that exists (another user's counts as alive). A zombie has exited but keeps its
    pid until reaped: `zombie_is_dead` counts it as dead (an unreadable stat too)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not zombie_is_dead:
        return True
    try:
        return read_stat(pid)[1][0] != "Z"
    except OSError:
        return False


def process_command_lines() -> list[tuple[int, list[str]]]:
    """(pid, argv) of every process this user may read, from /proc (empty where there is none)."""
    out: list[tuple[int, list[str]]] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return out
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                raw = fh.read()
        except OSError:
            continue
        if raw:
            out.append((int(name), [part.decode(errors="replace") for part in raw.rstrip(b"\0").split(b"\0")]))
    return out
