#!/usr/bin/env python3
"""JuQueue at scale: 100,000 live runs, a store that has seen 1,000,000 attempts, 1,000 nodes.

Parts (`--part`, repeatable; default all three), each against its targets:

1. `runs`: one `juqueue serve` with a local cluster of 2 nodes x 8 slots; one YAML `matrix:` of `--runs` `true`
   runs loaded by `POST /api/reload`. While the nodes work through it (`--phase-s`): the controller's batch p95
   (`/api/status` key `batch`), the serve process's RSS (VmRSS of its pid, workers not counted) and how long
   `juqueue runs --status failed` takes (the CLI, a subprocess). Then `serve` is stopped and started again on the
   same store: seconds until `/health` answers 200, seconds until the first reload is over (`/api/status` key
   `loading` false, or the reload's end when the server has no such key), and RSS once it is.
2. `attempts`: a store filled through the store module (runs inserted with Core, `--attempts` ended attempts
   written by `Store.commit` in chunks, as the controller writes them); then `serve` on it: seconds to `/health`
   200, RSS, `GET /api/usage` and `/api/status` times, and the batch p95 while 2 nodes run 400 `true` runs.
3. `nodes`: `--nodes` simulated nodes on the real broker (bench/scale_nodes.py: at most 4 processes of 250
   nodes, started by a backend this bench registers through `JUQUEUE_BACKENDS`), each first running one
   trivial run, then idle: the serve process's CPU share (an upper bound of the controller thread's) and the
   heartbeat handling lag (the stream's newest entry against the controller group's last read, XINFO, every
   0.5 s). Without a backend registration point (`juqueue.backends.registry`) it prints "not available".

Usage: python bench/scale.py [--part runs|attempts|nodes]... [--runs 100000] [--attempts 1000000] [--nodes 1000]
       [--phase-s 60] [--keep]
Run it with the Python of the checkout to measure (its `juqueue` is the one started). It never asserts: figures
are printed with their targets as met / NOT met, exit code 0. Figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from throughput import Serve, log, matrix_experiment  # the same serve set-up (bench/ is sys.path[0])

EXPERIMENT = "bench"
TARGETS = {"health_s": 10.0, "rss_mb": 500.0, "batch_p95_ms": 100.0, "cli_failed_s": 1.0, "health_1m_s": 30.0,
           "node_cpu": 0.10}


def verdict(value: float | None, target: float) -> str:
    return "n/a" if value is None else ("met" if value < target else "NOT met")


def report(label: str, value: float | None, unit: str, target: float | None = None) -> None:
    shown = "not available" if value is None else f"{value:.2f} {unit}"
    goal = f"  (target < {target:g} {unit}: {verdict(value, target)})" if target is not None else ""
    print(f"{label:58s} {shown}{goal}", flush=True)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def batch_p95(srv: Serve) -> float | None:
    batch = srv.api("GET", "/api/status").json().get("batch")
    return batch.get("p95_ms") if isinstance(batch, dict) else None


def cli_seconds(srv: Serve, *args: str) -> float:
    """Wall seconds of one CLI command; its CPU seconds (user + system) go to `cli_cpu` (a loaded machine
    stretches the wall time of a short process many times over)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "juqueue", *args, "--work-dir", str(srv.work_dir)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cli_cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return wall


cli_cpu: list[float] = []


def restart_timed(srv: Serve, timeout: float = 600) -> tuple[float, float | None]:
    """Stop serve, start it on the same work dir: seconds to /health 200, seconds to the first reload's end."""
    srv.stop()
    from support.serve import launch_serve

    t0 = time.perf_counter()
    srv.proc = launch_serve(srv.def_dir, srv.work_dir, srv.log_path, "--port", str(srv.port), "--tick-interval", f"{srv.tick:g}")
    health = None
    while time.perf_counter() - t0 < timeout:
        if srv.proc.poll() is not None:
            raise RuntimeError(f"serve exited:\n{srv.log_tail()}")
        try:
            if httpx.get(srv.url + "/health", timeout=2).status_code == 200:
                health = time.perf_counter() - t0
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    if health is None:
        raise RuntimeError(f"serve did not answer within {timeout} s:\n{srv.log_tail()}")
    srv.client = httpx.Client(base_url=srv.url, timeout=120, headers={"Authorization": f"Bearer {srv.token}"})
    while time.perf_counter() - t0 < timeout:
        try:
            status = srv.client.get("/api/status").json()
            if not status.get("loading"):
                return health, time.perf_counter() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return health, None


def add_experiment(srv: Serve, filename: str, text: str) -> None:
    """Write the file, POST /api/reload; a reload with errors stops the bench (it would measure nothing)."""
    (srv.def_dir / filename).write_text(text)
    summary = srv.api("POST", "/api/reload", params={"yes": "true"}).json()
    if summary.get("errors"):
        raise RuntimeError(f"the reload failed: {summary['errors']}")
    log(f"reload: {len(summary.get('added') or [])} runs added")


def wait_running(srv: Serve, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        counts = srv.api("GET", "/api/status").json().get("counts") or {}
        if counts.get("running", 0) + counts.get("assigned", 0) + counts.get("completed", 0) >= 16:
            return
        time.sleep(0.5)
    log("the nodes did not start runs in time; measuring anyway")


def part_runs(root: Path, n: int, phase_s: float) -> None:
    srv = Serve(root / "runs")
    try:
        srv.start()
        srv.client.timeout = httpx.Timeout(1800)
        log(f"{n} runs: one matrix experiment, POST /api/reload")
        t0 = time.perf_counter()
        add_experiment(srv, f"{EXPERIMENT}.yaml", matrix_experiment(EXPERIMENT, ["true"], n))
        report(f"runs: reload of {n} new runs", time.perf_counter() - t0, "s")
        wait_running(srv, 300)
        log(f"runs: the nodes work through the sweep for {phase_s:.0f} s")
        time.sleep(phase_s)
        assert srv.proc is not None
        report("runs: controller batch p95 while 2x8 slots run `true`", batch_p95(srv), "ms", TARGETS["batch_p95_ms"])
        report("runs: serve RSS while they run", rss_mb(srv.proc.pid), "MB", TARGETS["rss_mb"])
        report("runs: `juqueue runs --status failed` (wall, best of 3)",
               min(cli_seconds(srv, "runs", "--status", "failed") for _ in range(3)), "s", TARGETS["cli_failed_s"])
        report("runs: `juqueue runs --status failed` (its CPU, best of 3)", min(cli_cpu[-3:]), "s")
        counts = srv.api("GET", "/api/status").json().get("counts") or {}
        log(f"runs: before the restart: {counts}")
        health, loaded = restart_timed(srv)
        report("runs: restart: /health 200 after", health, "s", TARGETS["health_s"])
        report("runs: restart: first reload over after", loaded, "s")
        report("runs: restart: serve RSS once loaded", rss_mb(srv.proc.pid), "MB", TARGETS["rss_mb"])
        wait_running(srv, 120)
        time.sleep(min(phase_s, 30))
        report("runs: restart: controller batch p95", batch_p95(srv), "ms", TARGETS["batch_p95_ms"])
        report("runs: restart: serve RSS while they run", rss_mb(srv.proc.pid), "MB", TARGETS["rss_mb"])
    finally:
        srv.stop()


def part_attempts(root: Path, attempts: int, phase_s: float) -> None:
    from scale_store import fill_store  # bench/scale_store.py: the store filled through the store module

    srv = Serve(root / "attempts")
    t0 = time.perf_counter()
    fill_store(srv.work_dir, attempts)
    log(f"attempts: store with {attempts} attempts filled in {time.perf_counter() - t0:.0f} s")
    report(f"attempts: node-hour totals over {attempts} attempts (in-process, uncached)", usage_seconds(srv.work_dir), "s")
    try:
        t0 = time.perf_counter()
        srv.start(timeout=600)
        report(f"attempts: serve on {attempts} attempts: /health 200 after", time.perf_counter() - t0, "s",
               TARGETS["health_1m_s"])
        assert srv.proc is not None
        report("attempts: serve RSS at start", rss_mb(srv.proc.pid), "MB", TARGETS["rss_mb"])
        for path in ("/api/usage", "/api/status"):
            times = []
            for _ in range(3):
                t1 = time.perf_counter()
                srv.api("GET", path, params={"max_points": 10} if path == "/api/usage" else None)
                times.append(time.perf_counter() - t1)
                time.sleep(5.1)  # past the usage totals' 5 s cache
            report(f"attempts: GET {path} (best of 3; the 5 s cache may answer)", min(times) * 1000, "ms")
        add_experiment(srv, "small.yaml", matrix_experiment("small", ["true"], 400))
        wait_running(srv, 120)
        time.sleep(min(phase_s, 30))
        report("attempts: controller batch p95 while 2x8 slots run `true`", batch_p95(srv), "ms", TARGETS["batch_p95_ms"])
        report("attempts: serve RSS while they run", rss_mb(srv.proc.pid), "MB", TARGETS["rss_mb"])
    finally:
        srv.stop()


def usage_seconds(work_dir: Path) -> float:
    """What `/api/usage` and `/api/status` compute (every 5 s at most), timed in this process: through
    HTTP the 5 s cache and requests abandoned by a client's timeout (their computations finish later and
    refresh the cache) would hide it."""
    from juqueue.accounting import compute_usage
    from juqueue.store.engine import make_engine
    from juqueue.store.store import Store

    engine = make_engine(None, work_dir)
    t0 = time.perf_counter()
    inputs = Store(engine).usage_inputs()
    compute_usage(inputs[0], inputs[1], time.time(), *inputs[2:])  # with running totals: a third input
    engine.dispose()
    return time.perf_counter() - t0


def part_nodes(root: Path, nodes: int, phase_s: float) -> None:
    try:
        from scale_nodes import measure_nodes  # bench/scale_nodes.py
        import juqueue.backends.registry  # noqa: F401  (the registration point)
    except ImportError:
        print(f"{'nodes: ' + str(nodes) + ' simulated nodes':58s} not available (no backend registration point)", flush=True)
        return
    measure_nodes(root / "nodes", nodes, phase_s, report, TARGETS)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", action="append", choices=["runs", "attempts", "nodes"])
    p.add_argument("--runs", type=int, default=100_000)
    p.add_argument("--attempts", type=int, default=1_000_000)
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--phase-s", type=float, default=60.0)
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = p.parse_args()
    import juqueue

    os.environ.setdefault("JUQUEUE_EVAL_TIMEOUT", "1800")  # evaluating 100,000 runs on a loaded machine takes > 60 s
    print(f"# JuQueue {getattr(juqueue, '__file__', '?')}; figures from a shared, loaded machine", flush=True)
    root = Path(tempfile.mkdtemp(prefix="jq-scale-"))
    try:
        for part in args.part or ["runs", "attempts", "nodes"]:
            if part == "runs":
                part_runs(root, args.runs, args.phase_s)
            elif part == "attempts":
                part_attempts(root, args.attempts, args.phase_s)
            else:
                part_nodes(root, args.nodes, args.phase_s)
    finally:
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
