"""This user's SLURM jobs by job-name prefix: list, cancel, and sample `squeue` in the background."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

LIVE_STATES = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING", "STOPPED",
               "SIGNALING", "STAGE_OUT"}


def squeue(prefix: str) -> list[tuple[str, str, str]]:
    """(job id, name, state) of this user's jobs whose name starts with `prefix`."""
    proc = subprocess.run(["squeue", "--me", "-h", "-t", "all", "-o", "%i %j %T"], capture_output=True, text=True, timeout=30)
    out = []
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].startswith(prefix):
            out.append((parts[0], parts[1], parts[2]))
    return out


def live_jobs(prefix: str) -> list[tuple[str, str, str]]:
    return [j for j in squeue(prefix) if j[2] in LIVE_STATES]


def cancel_and_wait(prefix: str, timeout: float = 30) -> list[tuple[str, str, str]]:
    """scancel every job of the prefix, then wait up to `timeout` s for them to end; the ones still live."""
    for job_id, _name, _state in squeue(prefix):
        subprocess.run(["scancel", job_id], capture_output=True, timeout=30)
    deadline = time.time() + timeout
    left = live_jobs(prefix)
    while left and time.time() < deadline:
        time.sleep(1)
        left = live_jobs(prefix)
    return left


def slurm_cluster(name: str = "local", **fields) -> str:
    """One `type: slurm` cluster in clusters.yaml, with test-friendly defaults."""
    spec = {
        "type": "slurm",
        "partition": "debug",
        "num_slots": 1,
        "max_jobs": 1,
        "time": "00:10:00",
        "python": sys.executable,
        "idle_timeout": 5,
        "heartbeat_interval": 1,
        "heartbeat_timeout": 10,
        "poll_interval": 2,
        "grace_period": 10,
        "signal_lead": 70,
    }
    spec.update(fields)
    lines = [f"{name}:"] + [f"  {k}: {json.dumps(v)}" for k, v in spec.items()]
    return "\n".join(lines) + "\n"


class SqueueSampler:
    """Samples squeue for a job-name prefix in the background (a context manager): the most live jobs
    seen at once, when each job was first and last seen live, and the samples with more than
    `max_jobs` live jobs."""

    def __init__(self, prefix: str, interval: float = 0.5, max_jobs: int | None = None) -> None:
        self.prefix, self.interval, self.max_jobs = prefix, interval, max_jobs
        self.max_live = 0
        self.samples = 0
        self.first_seen: dict[str, float] = {}
        self.last_seen: dict[str, float] = {}
        self.over: list[tuple[float, list]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    @property
    def seen(self) -> set[str]:
        """Every job id seen live."""
        return set(self.first_seen)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                jobs = live_jobs(self.prefix)
            except Exception:  # noqa: BLE001 - a failed sample is just skipped
                jobs = None
            if jobs is not None:
                now = time.time()
                self.samples += 1
                self.max_live = max(self.max_live, len(jobs))
                if self.max_jobs is not None and len(jobs) > self.max_jobs:
                    self.over.append((now, jobs))
                for job_id, _name, _state in jobs:
                    self.first_seen.setdefault(job_id, now)
                    self.last_seen[job_id] = now
            self._stop.wait(self.interval)

    def __enter__(self) -> "SqueueSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)
