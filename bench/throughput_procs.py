"""What `throughput.py` reads about JuQueue's processes (CPU, RSS) and its live-feed client.

CPU is the kernel's own count (`/proc/<pid>/stat`: utime + stime of the process, all threads,
not its waited-for children), so a process's CPU per run is its CPU while the N runs went
through divided by N. A run's own CPU (`true`) counts for the worker only as `cutime`, which
is left out.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import httpx

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of `pid` in seconds; None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> float | None:
    """Resident set size in MB (VmRSS); None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def roles(pids: list[int], serve_pid: int) -> dict[int, str]:
    """serve, worker<i> (by pid order), broker: JuQueue's long-lived processes among a work dir's
    (the embedded broker is the serve process's child)."""
    out: dict[int, str] = {}
    workers = []
    for pid in sorted(set(pids) | set(children(serve_pid))):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if pid == serve_pid:
            out[pid] = "serve"
        elif b"juqueue.workers.node" in cmd:
            workers.append(pid)
        elif b"valkey" in cmd or b"redis-server" in cmd:
            out[pid] = "broker"
    for i, pid in enumerate(sorted(workers)):
        out[pid] = f"worker{i}"
    return out


def cpu_snapshot(role_of: dict[int, str]) -> dict[str, float]:
    return {role: cpu for pid, role in role_of.items() if (cpu := cpu_seconds(pid)) is not None}


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {role: after[role] - before[role] for role in after if role in before}


class FeedListener:
    """One client of the live feed (`GET /api/events`), connected while JuQueue runs, as a
    browser tab with the runs page open would be; it only counts what it receives."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.messages = 0
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="feed-listener", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            with httpx.Client(base_url=self.url, timeout=httpx.Timeout(10, read=None),
                              headers={"Authorization": f"Bearer {self.token}"}) as client:
                with client.stream("GET", "/api/events") as resp:
                    if resp.status_code == 404:
                        self.error = "not available (no /api/events)"
                        return
                    resp.raise_for_status()
                    for line in resp.iter_lines():
                        if line.startswith("event:"):
                            self.messages += 1
                        if self._stop.is_set():
                            return
        except Exception as exc:  # the server stopping ends the stream too
            if not self._stop.is_set():
                self.error = f"{type(exc).__name__}: {exc}"

    def stop(self) -> None:
        self._stop.set()


def broker_calls(client) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Commands the broker has executed, per command (`INFO commandstats`; a Lua script's own
    calls count too): a count that, unlike CPU, does not depend on the machine's load."""
    try:
        stats = client.info("commandstats")
    except Exception:
        return {}
    return {key.removeprefix("cmdstat_"): int(value["calls"]) for key, value in stats.items()}
