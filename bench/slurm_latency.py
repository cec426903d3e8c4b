#!/usr/bin/env python3
"""JuQueue latency on a real SLURM (companion to bench/throughput.py; scripts/setup-test-slurm.sh starts one).

Three measurements, each with its own `juqueue serve` (temp work dir, free port) and its own SLURM job name:

1. warm:    a SLURM cluster of 1 job x 4 slots (idle_timeout 600), warmed with one `sleep 2` run so the job is up;
            then K single-run experiments (`true`), one at a time: attempts.started_at - runs.queued_at.
2. cold:    a SLURM cluster of 1 job with idle_timeout 1, so the job ends between samples; K times: wait until the
            cluster has no live node (API) and no live job of its name (squeue), add one `true` run:
            started_at - queued_at (includes sbatch, SLURM scheduling and the worker's start).
3. scancel: a SLURM cluster of 1 slot x max 2 jobs; K times: one `sleep 60` run, wait until it runs, `scancel` its
            node's job, time from just before scancel to the started_at of the run's next attempt.

Usage: python bench/slurm_latency.py [--k-warm 10] [--k-cold 5] [--k-scancel 5] [--partition debug] [--keep]
It never asserts and exits 0; errors are printed as `ERROR` lines.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # support/: helpers shared with the tests

from support.slurm import cancel_and_wait, live_jobs, slurm_cluster  # noqa: E402
from support.waiting import wait_until  # noqa: E402
from throughput import Serve, log, pct  # noqa: E402


# ---------------------------------------------------------------------------------------------- SLURM helpers

def one_run(experiment: str, cluster: str, cmd: list[str]) -> str:
    return f"experiment: {experiment}\ncluster: {cluster}\nruns:\n  - id: r\n    cmd: {json.dumps(cmd)}\n"


def wait_for(srv: Serve, what: str, check, timeout: float, interval: float = 0.1):
    """support.waiting.wait_until as a benchmark fails: RuntimeError with the serve log's tail."""
    return wait_until(what, check, timeout, interval, detail=lambda: srv.log_tail(2000), error=RuntimeError)


def queued_to_started(srv: Serve, gid: str) -> float:
    with srv.db() as db:
        q, s = db.execute("select r.queued_at, a.started_at from runs r join attempts a "
                          "on a.global_id = r.global_id and a.number = r.attempt where r.global_id = ?",
                          (gid,)).fetchone()
    return s - q


def one_true_run(srv: Serve, name: str, poll: float, timeout: float) -> float:
    """Experiment `name` of one `true` run on cluster c, to its end: its queued -> started seconds."""
    srv.add_experiment(f"{name}.yaml", one_run(name, "c", ["true"]))
    srv.wait_experiment_final(name, 1, poll, timeout)
    return queued_to_started(srv, f"{name}@r")


def live_nodes(srv: Serve, cluster: str) -> list[dict]:
    return [n for n in srv.api("GET", "/api/nodes").json() if n.get("live") and n.get("cluster") == cluster]


# ---------------------------------------------------------------------------------------------- scenarios

class Scenario:
    """One serve with one SLURM cluster named `c` and a unique job name; always stopped and cleaned up."""

    def __init__(self, root: Path, tag: str, partition: str, **fields) -> None:
        self.job_name = f"jqb{tag}{uuid.uuid4().hex[:6]}"
        self.srv = Serve(root / tag)
        self.srv.job_name = self.job_name
        (self.srv.def_dir / "clusters.yaml").write_text(slurm_cluster("c", partition=partition, job_name=self.job_name, **fields))

    def __enter__(self) -> Serve:
        log(f"{self.job_name}: serve on port {self.srv.port}, work dir {self.srv.work_dir}")
        self.srv.start()
        return self.srv

    def __exit__(self, *exc) -> None:
        try:
            self.srv.stop()  # POST /api/stop {"cancel_jobs": true}, then kills leftover work-dir processes
        finally:
            left = cancel_and_wait(self.job_name, timeout=30)
            if left:
                log(f"{self.job_name}: jobs still live after scancel: {left}")
            if getattr(self.srv, "left_after_stop", None):
                log(f"{self.job_name}: work-dir processes killed after stop: {self.srv.left_after_stop}")


def bench_warm(root: Path, partition: str, k: int, out: list[float]) -> None:
    with Scenario(root, "warm", partition, num_slots=4, max_jobs=1, idle_timeout=600) as srv:
        log("warm: warm-up (one sleep 2 run)")
        srv.add_experiment("warmup.yaml", one_run("warmup", "c", ["sleep", "2"]))
        srv.wait_experiment_final("warmup", 1, 0.5, 300)
        for i in range(k):
            out.append(one_true_run(srv, f"warm{i}", 0.05, 120))
            log(f"warm {i + 1}/{k}: {out[-1] * 1000:.1f} ms")


def bench_cold(root: Path, partition: str, k: int, out: list[float]) -> None:
    with Scenario(root, "cold", partition, num_slots=1, max_jobs=1, idle_timeout=1) as srv:
        job_name = srv.job_name
        for i in range(k):
            wait_for(srv, "no live node and no live SLURM job of the cold cluster",
                     lambda: not live_nodes(srv, "c") and not live_jobs(job_name), 180, 0.5)
            out.append(one_true_run(srv, f"cold{i}", 0.1, 300))
            log(f"cold {i + 1}/{k}: {out[-1] * 1000:.1f} ms")


def bench_scancel(root: Path, partition: str, k: int, out: list[float]) -> None:
    with Scenario(root, "scan", partition, num_slots=1, max_jobs=2, idle_timeout=30) as srv:
        for i in range(k):
            name = f"scan{i}"
            gid = f"{name}@r"
            srv.add_experiment(f"{name}.yaml", one_run(name, "c", ["sleep", "60"]))

            def running_attempt():
                with srv.db() as db:
                    return db.execute("select number, node from attempts where global_id = ? and started_at is not null "
                                      "and ended_at is null order by number desc limit 1", (gid,)).fetchone()

            number, node = wait_for(srv, f"{gid} running", running_attempt, 300, 0.1)
            job_id = wait_for(srv, f"job id of node {node}",
                              lambda: next((n["job_id"] for n in srv.api("GET", "/api/nodes").json()
                                            if n["name"] == node and n.get("job_id")), None), 60, 0.2)
            t0 = time.time()
            subprocess.run(["scancel", str(job_id)], check=True, timeout=30)

            def next_start():
                with srv.db() as db:
                    return db.execute("select started_at, node from attempts where global_id = ? and number > ? "
                                      "and started_at is not null order by number limit 1", (gid, number)).fetchone()

            started, node2 = wait_for(srv, f"{gid} restarted after scancel of job {job_id}", next_start, 300, 0.1)
            out.append(started - t0)
            log(f"scancel {i + 1}/{k}: job {job_id} ({node}) -> {node2}: {out[-1] * 1000:.1f} ms")
            srv.api("POST", "/api/runs/cancel", json={"ids": [gid]})
            srv.wait_experiment_final(name, 1, 0.2, 120)


# ---------------------------------------------------------------------------------------------- main

def line(label: str, what: str, values: list[float], error: str | None) -> str:
    head = f"slurm {label:<7} K={len(values)}"
    if not values:
        return f"{head} {what} not measured" + (f"  ERROR: {error}" if error else "")
    ms = [v * 1000 for v in values]
    text = (f"{head} {what} median {statistics.median(ms):.1f} ms p90 {pct(ms, 0.9):.1f} ms "
            f"(min {min(ms):.1f}, max {max(ms):.1f})")
    return text + (f"  ERROR after {len(values)} samples: {error}" if error else "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k-warm", type=int, default=10)
    ap.add_argument("--k-cold", type=int, default=5)
    ap.add_argument("--k-scancel", type=int, default=5)
    ap.add_argument("--partition", default="debug")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (serve logs, work dirs, stores)")
    args = ap.parse_args()

    if shutil.which("sbatch") is None or shutil.which("squeue") is None:
        print("slurm    not measured: sbatch/squeue not on PATH (scripts/setup-test-slurm.sh starts a test SLURM)")
        return 0

    root = Path(tempfile.mkdtemp(prefix="juqueue-slurm-bench-"))
    log(f"temp dir {root}")
    results = []
    try:
        for label, what, fn, k in (("warm", "queued->started", bench_warm, args.k_warm),
                                   ("cold", "queued->started", bench_cold, args.k_cold),
                                   ("scancel", "scancel->restarted", bench_scancel, args.k_scancel)):
            values: list[float] = []
            error = None
            try:
                fn(root, args.partition, k, values)
            except Exception as exc:  # a benchmark reports, it does not crash
                error = f"{type(exc).__name__}: {str(exc)[:300]}"
            results.append(line(label, what, values, error))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    for text in results:
        print(text)
    if args.keep:
        print(f"kept     {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
