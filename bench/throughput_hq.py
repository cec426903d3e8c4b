"""HyperQueue's part of `throughput.py`: a LocalCluster of 2 workers x 8 cores, kept warm for all rounds.

HyperQueue's server and workers run inside the bench process (FFI) and print tables and
progress bars: the bench process's fd 1 and 2 go to `hq.log` while the cluster lives, and the
bench writes its own output to the saved descriptors (`Redirect`).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


class Redirect:
    """fd 1 and 2 to a file; `out`/`err` are text streams on the original descriptors."""

    def __init__(self, path: Path) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self.saved = os.dup(1), os.dup(2)
        with open(path, "ab") as fh:
            os.dup2(fh.fileno(), 1)
            os.dup2(fh.fileno(), 2)
        self.out = os.fdopen(os.dup(self.saved[0]), "w", buffering=1)
        self.err = os.fdopen(os.dup(self.saved[1]), "w", buffering=1)

    def restore(self) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self.out.flush()
        self.err.flush()
        os.dup2(self.saved[0], 1)
        os.dup2(self.saved[1], 2)
        os.close(self.saved[0])
        os.close(self.saved[1])


class HyperQueue:
    """`start()` brings the cluster up and warms it (16 x sleep 1); `run(n)` times n `true` tasks."""

    def __init__(self, root: Path, nodes: int, slots: int) -> None:
        self.root, self.nodes, self.slots = root, nodes, slots
        self.cluster = None
        self.unavailable: str | None = None
        self.version = ""
        self._jobs = 0

    def start(self) -> None:
        try:
            from importlib.metadata import version

            from hyperqueue import Job, LocalCluster
            from hyperqueue.cluster import WorkerConfig
        except ImportError as exc:
            self.unavailable = f"hyperqueue not importable ({exc}); `pip install hyperqueue` to include it"
            return
        self.version, self._job = version("hyperqueue"), Job
        (self.root / "hq-server").mkdir()
        self.cluster = LocalCluster(server_dir=str(self.root / "hq-server"))
        for _ in range(self.nodes):
            self.cluster.start_worker(WorkerConfig(cores=self.slots))
        self.client = self.cluster.client()
        warm = Job(default_workdir=self.root / "hq-work" / "warmup")
        for _ in range(self.nodes * self.slots):
            warm.program(["sleep", "1"], stdout=None, stderr=None)
        self.client.wait_for_jobs([self.client.submit(warm)])

    def run(self, n: int) -> dict:
        """n `true` tasks plus a final task depending on all of them that writes its own clock:
        submit -> that timestamp (wait_for_jobs polls once a second, so it is not the timer).
        `cpu`: the bench process's CPU meanwhile (HyperQueue's server and workers live in it)."""
        self._jobs += 1
        stamp = self.root / f"hq-final-{self._jobs}.txt"
        job = self._job(default_workdir=self.root / "hq-work" / f"bench{self._jobs}")
        tasks = [job.program(["true"]) for _ in range(n)]
        job.program(["sh", "-c", f"date +%s.%N > {stamp}"], deps=tasks)
        cpu0 = sum(os.times()[:2])
        t0 = time.time()
        submitted = self.client.submit(job)
        ok = self.client.wait_for_jobs([submitted], raise_on_error=False)
        cpu = sum(os.times()[:2]) - cpu0
        return {"span": float(stamp.read_text().strip()) - t0, "ok": ok, "cpu": cpu}

    def stop(self) -> None:
        if self.cluster is not None:
            try:
                self.cluster.stop()
            except Exception:
                pass
