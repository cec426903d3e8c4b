"""Faults the soak does to processes: workers killed or stopped, `serve` killed and started again,
the embedded broker killed (restarted from its AOF by `serve`) or emptied, a SLURM job cancelled.

Each injector returns a short text of what it did (the soak's record), or None when there was
nothing to hit (no live node, say); the schedule then just moves on.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable

from juqueue.paths import WorkDir
from juqueue.soak.server import SoakServer


def live_nodes(server: SoakServer, states: tuple[str, ...] = ("up",)) -> list[dict]:
    try:
        resp = server.api("GET", "/api/nodes", params={"ended_limit": 0})
        resp.raise_for_status()
    except Exception:  # noqa: BLE001 - a server that does not answer has no node to hit now
        return []
    return [n for n in resp.json() if n.get("live") and n.get("state") in states]


def worker_pid(work: WorkDir, node: str) -> int | None:
    try:
        return int((work.node_dir(node) / "worker.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def _signal(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False


class ProcessFaults:
    """The process-level faults of one soak, with its timings (seconds)."""

    def __init__(self, server: SoakServer, rng: random.Random, heartbeat_timeout_s: float, lease_ttl_s: float) -> None:
        self.server = server
        self.work = WorkDir(server.work_dir)
        self.rng = rng
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.lease_ttl_s = lease_ttl_s
        self._stopped: list[tuple[int, threading.Timer]] = []

    def injectors(self) -> dict[str, Callable[[], str | None]]:
        return {
            "kill_worker": self.kill_worker, "kill_serve": self.kill_serve,
            "stop_worker_short": lambda: self.stop_worker(self.heartbeat_timeout_s / 3),
            "stop_worker_long": lambda: self.stop_worker(self.heartbeat_timeout_s + self.lease_ttl_s / 2),
            "kill_broker": self.kill_broker, "reset_broker": self.reset_broker, "scancel": self.scancel,
        }

    def _pick_worker(self) -> tuple[dict, int] | None:
        nodes = [n for n in live_nodes(self.server) if n.get("runs")]  # a SLURM job of the test SLURM runs here too
        self.rng.shuffle(nodes)
        for node in nodes:
            pid = worker_pid(self.work, node["name"])
            if pid is not None:
                return node, pid
        return None

    def kill_worker(self) -> str | None:
        picked = self._pick_worker()
        if picked is None:
            return None
        node, pid = picked
        return f"SIGKILL worker of {node['name']} (pid {pid}, runs {node['runs']})" if _signal(pid, signal.SIGKILL) else None

    def stop_worker(self, seconds: float) -> str | None:
        """SIGSTOP a worker (its runs go on), SIGCONT it `seconds` later (in the background)."""
        picked = self._pick_worker()
        if picked is None:
            return None
        node, pid = picked
        if not _signal(pid, signal.SIGSTOP):
            return None
        timer = threading.Timer(seconds, _signal, (pid, signal.SIGCONT))
        timer.daemon = True
        timer.start()
        self._stopped.append((pid, timer))
        return f"SIGSTOP worker of {node['name']} (pid {pid}) for {seconds:.1f} s, runs {node['runs']}"

    def continue_all(self) -> None:
        """Every stopped worker continues now (before the final wait and before `stop`)."""
        for pid, timer in self._stopped:
            timer.cancel()
            _signal(pid, signal.SIGCONT)
        self._stopped.clear()

    def kill_serve(self) -> str:
        down_for = round(self.rng.uniform(0.5, 4.0), 1)
        self.server.kill()
        time.sleep(down_for)
        self.server.start()
        return f"SIGKILL serve, started again after {down_for} s (start #{self.server.starts})"

    def _broker_pid(self) -> int | None:
        try:
            return int(json.loads((self.work.broker_dir / "broker.json").read_text())["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def kill_broker(self) -> str | None:
        """SIGKILL the embedded broker; `serve` starts it again from its AOF."""
        pid = self._broker_pid()
        return f"SIGKILL broker (pid {pid}); serve restarts it from its AOF" if pid and _signal(pid, signal.SIGKILL) else None

    def reset_broker(self) -> str | None:
        """Delete the broker's AOF, then SIGKILL it: `serve` starts it again empty."""
        pid = self._broker_pid()
        if not pid:
            return None
        aof_dir = self.work.broker_dir / "appendonlydir"
        removed = 0
        for path in aof_dir.glob("*") if aof_dir.is_dir() else []:
            path.unlink(missing_ok=True)
            removed += 1
        if not _signal(pid, signal.SIGKILL):
            return None
        return f"broker emptied: {removed} AOF files deleted, SIGKILL (pid {pid}); serve restarts it empty"

    def scancel(self) -> str | None:
        nodes = [n for n in live_nodes(self.server, ("up", "starting", "pending")) if n.get("job_id")]
        if not nodes:
            return None
        node = self.rng.choice(nodes)
        proc = subprocess.run(["scancel", node["job_id"]], capture_output=True, text=True, timeout=30)
        return f"scancel {node['job_id']} ({node['name']}): rc {proc.returncode} {proc.stderr.strip()}"


def processes_under(work_dir: Path) -> list[tuple[int, str]]:
    """(pid, command line) of live processes whose command line or environment names the work dir."""
    needle, found = str(work_dir).encode(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            blob = cmdline
            try:
                blob += (entry / "environ").read_bytes()
            except OSError:
                pass
            status = (entry / "stat").read_text()
        except OSError:
            continue
        if needle in blob and ") Z " not in status:
            found.append((int(entry.name), cmdline.replace(b"\0", b" ").decode(errors="replace").strip()))
    return found
