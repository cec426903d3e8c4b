#!/usr/bin/env python3
"""JuQueue throughput and latency benchmark, against the targets: >= 0.40 x xargs, median latency < 10 ms.

One run measures, on this machine and in this order:

1. xargs:      `seq N | xargs -P 16 -n 1 true` (the machine's own limit for spawning N processes)
2. JuQueue:    N `true` runs through `juqueue serve` with a local cluster of 2 nodes x 8 slots,
               warmed first; timed by JuQueue's own records (first queued_at -> last ended_at).
3. HyperQueue: N `true` tasks on a LocalCluster of 2 workers x 8 cores (optional: `pip install hyperqueue`),
               timed from submit to the end of one final task that depends on all others.
4. Latency:    K single-run experiments on the warm nodes: attempt.started_at - run.queued_at from the store.

Usage: python bench/throughput.py [--n 2000] [--k 15] [--skip-hq] [--keep]
It never asserts: targets are printed as met / NOT met and the exit code is 0.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # support/: helpers shared with the tests

from support.processes import free_port, kill_pids, work_dir_pids  # noqa: E402
from support.serve import launch_serve, log_tail, wait_serve_ready  # noqa: E402

from juqueue.paths import WorkDir  # noqa: E402

FINAL = ("completed", "failed", "cancelled")
LIVE = ("queued", "assigned", "running")
SLOTS, NODES = 8, 2
TARGET_RATIO = 0.40
TARGET_LATENCY_MS = 10.0


def log(msg: str) -> None:
    print(f"# {msg}", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1), nearest-rank on the sorted values."""
    s = sorted(values)
    idx = min(len(s) - 1, max(0, int(round(q * (len(s) - 1)))))
    return s[idx]


# ---------------------------------------------------------------------------------------------- xargs

def bench_xargs(n: int) -> float:
    t0 = time.perf_counter()
    subprocess.run(f"seq {n} | xargs -P 16 -n 1 true", shell=True, check=True)
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------- JuQueue

class Serve:
    """One `python -m juqueue serve` subprocess on its own def dir, work dir and port."""

    def __init__(self, root: Path, tick: float = 1.0) -> None:
        self.def_dir, self.work_dir = root / "defs", root / "work"
        self.def_dir.mkdir(parents=True)
        self.work_dir.mkdir(parents=True)
        self.port, self.tick = free_port(), tick
        self.log_path = root / "serve.log"
        self.proc: subprocess.Popen | None = None
        # Warm nodes: `consolidation: aggressive` (the default) releases an empty surplus node at
        # once whatever `idle_timeout` says, so between the parts (warm-up, N runs, each latency
        # run) both nodes would go and the next part would time a node start, not JuQueue's path.
        (self.def_dir / "clusters.yaml").write_text(
            f"local:\n  type: local\n  num_slots: {SLOTS}\n  max_jobs: {NODES}\n  idle_timeout: 3600\n"
            "  consolidation: idle\n")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        self.proc = launch_serve(self.def_dir, self.work_dir, self.log_path, "--port", str(self.port),
                                 "--tick-interval", f"{self.tick:g}")
        wait_serve_ready(self.proc, self.url, self.work_dir, self.log_path, timeout, error=RuntimeError)
        self.client = httpx.Client(base_url=self.url, timeout=120, headers={"Authorization": f"Bearer {self.token}"})

    def log_tail(self, n: int = 4000) -> str:
        return log_tail(self.log_path, n)

    @property
    def token(self) -> str:
        return WorkDir(self.work_dir).token_file.read_text().strip()

    def api(self, method: str, path: str, **kw) -> httpx.Response:
        resp = self.client.request(method, path, **kw)
        resp.raise_for_status()
        return resp

    def add_experiment(self, filename: str, text: str) -> None:
        path = self.def_dir / filename
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.rename(path)
        self.api("POST", "/api/reload")

    def wait_experiment_final(self, experiment: str, expected: int, poll: float, timeout: float) -> None:
        """Poll only to know when to stop; timings come from the store."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            # Cheap questions while it runs (a full listing of N runs would cost the serve process CPU) ...
            busy = any(self.api("GET", "/api/runs", params={"experiment": experiment, "status": s, "limit": 1}).json()
                       for s in LIVE)
            if not busy and self.final_count(experiment) >= expected:  # ... and the totals to confirm
                return
            time.sleep(poll)
        raise RuntimeError(f"experiment {experiment} not final within {timeout} s:\n{self.log_tail()}")

    def final_count(self, experiment: str) -> int:
        """How many of the experiment's runs are final, or -1 while any is not (two totals, no rows)."""
        def total(**params) -> int:
            resp = self.api("GET", "/api/runs", params={"experiment": experiment, "limit": 1, **params})
            return int(resp.headers["X-Total-Count"])
        final = total(status=sorted(FINAL))
        return final if final == total() else -1

    def db(self) -> sqlite3.Connection:
        path = WorkDir(self.work_dir).db_file
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)

    def work_dir_pids(self) -> list[int]:
        return work_dir_pids(self.work_dir)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.client.post("/api/stop", json={"cancel_jobs": True}, timeout=10)
            except (httpx.HTTPError, AttributeError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                log("serve did not stop within 60 s after /api/stop: killing its process group")
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        deadline = time.time() + 15
        left = self.work_dir_pids()
        while left and time.time() < deadline:
            time.sleep(0.3)
            left = self.work_dir_pids()
        if left:
            log(f"processes of the work dir still alive after stop: {left}; killing them")
            kill_pids(left)
        self.left_after_stop = left


def matrix_experiment(name: str, cmd: list[str], n: int) -> str:
    return (f"experiment: {name}\ncluster: local\ncmd: {json.dumps(cmd)}\nid: \"r{{i}}\"\n"
            f"matrix:\n  i: [{', '.join(str(i) for i in range(n))}]\n")


def bench_juqueue(root: Path, n: int, k: int, profile_dir: Path | None = None) -> dict:
    srv = Serve(root)
    out: dict = {"serve": srv}
    try:
        log(f"juqueue: starting serve on port {srv.port}, work dir {srv.work_dir}")
        srv.start()

        log(f"juqueue: warm-up ({NODES * SLOTS} x sleep 1)")
        srv.add_experiment("warmup.yaml", matrix_experiment("warmup", ["sleep", "1"], NODES * SLOTS))
        srv.wait_experiment_final("warmup", NODES * SLOTS, 0.5, 180)
        with srv.db() as db:
            out["warm_nodes"] = db.execute(
                "select count(distinct a.node) from attempts a join runs r on r.global_id = a.global_id "
                "where r.experiment = 'warmup'").fetchone()[0]

        log(f"juqueue: {n} x true")
        spies = start_profilers(srv, profile_dir) if profile_dir else []
        try:
            srv.add_experiment("bench.yaml", matrix_experiment("bench", ["true"], n))
            srv.wait_experiment_final("bench", n, 0.5, max(300, n / 5))
        finally:
            out["profiles"] = stop_profilers(spies)
        with srv.db() as db:
            q0, e1, cnt, ok = db.execute(
                "select min(queued_at), max(ended_at), count(*), sum(status = 'completed') from runs "
                "where experiment = 'bench'").fetchone()
            s0 = db.execute("select min(a.started_at) from attempts a join runs r on r.global_id = a.global_id "
                            "where r.experiment = 'bench'").fetchone()[0]
            attempts = db.execute("select count(*) from attempts a join runs r on r.global_id = a.global_id "
                                  "where r.experiment = 'bench'").fetchone()[0]
            # nodes the N runs used, and how many of them were started only after the runs were queued
            used, cold = db.execute(
                "select count(*), coalesce(sum(n.created_at > ?), 0) from nodes n where n.name in "
                "(select a.node from attempts a join runs r on r.global_id = a.global_id where r.experiment = 'bench')",
                (q0,)).fetchone()
        out.update(span=e1 - q0, first_start=s0 - q0, runs=cnt, completed=ok, attempts=attempts, nodes_used=used,
                   nodes_cold=cold)

        log(f"juqueue: latency, {k} single runs")
        lat, ctl, wrk, cold = [], [], [], 0
        for i in range(k):
            name = f"lat{i}"
            srv.add_experiment(f"{name}.yaml", f"experiment: {name}\ncluster: local\nruns:\n  - id: r\n    cmd: [\"true\"]\n")
            srv.wait_experiment_final(name, 1, 0.05, 60)
            with srv.db() as db:
                q, p, s, node_created = db.execute(
                    "select r.queued_at, a.published_at, a.started_at, n.created_at from runs r join attempts a "
                    "on a.global_id = r.global_id and a.number = r.attempt left join nodes n on n.name = a.node "
                    "where r.global_id = ?", (f"{name}@r",)).fetchone()
            cold += node_created is None or node_created > q  # a node started for it: not a warm sample
            lat.append(s - q)
            ctl.append(p - q)
            wrk.append(s - p)
        out.update(lat=lat, ctl=ctl, wrk=wrk, lat_cold=cold)
    except Exception as exc:  # a benchmark reports, it does not crash
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        log("juqueue: stopping serve")
        try:
            srv.stop()
        except Exception as exc:
            out.setdefault("error", f"stop failed: {exc}")
    out["left_after_stop"] = getattr(srv, "left_after_stop", [])
    return out


# ---------------------------------------------------------------------------------------------- profiling (--profile)

def start_profilers(srv: Serve, out_dir: Path) -> list[tuple[str, subprocess.Popen, Path]]:
    """py-spy on the serve process and on one worker node while the N runs go through (--profile DIR)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        log("--profile: py-spy not found (pip install py-spy); not profiling")
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    targets = [("serve", srv.proc.pid)]
    workers = [pid for pid in srv.work_dir_pids() if b"juqueue.workers.node" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    targets += [(f"worker{i}", pid) for i, pid in enumerate(sorted(workers)[:1])]
    spies = []
    for name, pid in targets:
        path = out_dir / f"{name}.txt"
        proc = subprocess.Popen([spy, "record", "--format", "raw", "--rate", "100", "--nonblocking", "--pid", str(pid),
                                 "--output", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        spies.append((name, proc, path))
    time.sleep(1.0)  # let py-spy attach before the runs arrive
    return spies


def stop_profilers(spies: list[tuple[str, subprocess.Popen, Path]]) -> dict[str, Path]:
    done = {}
    for name, proc, path in spies:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if path.exists():
            done[name] = path
    return done


def summarize_profile(path: Path, top: int = 12) -> list[str]:
    """Top functions by self and by inclusive samples from py-spy's raw (collapsed stack) output."""
    self_c: dict[str, int] = {}
    incl_c: dict[str, int] = {}
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        c = int(count)
        total += c
        frames = [f.rsplit(":", 1)[0] + ")" if f.endswith(")") and ":" in f else f for f in stack.split(";")]
        frames = [f.replace(str(Path(sys.prefix)), "<venv>") for f in frames]
        self_c[frames[-1]] = self_c.get(frames[-1], 0) + c
        for f in set(frames):
            incl_c[f] = incl_c.get(f, 0) + c
    if not total:
        return ["  (no samples)"]
    lines = [f"  {total} samples at 100 Hz (~{total / 100:.1f} CPU-s across threads)", "  self:"]
    lines += [f"    {c * 100 / total:5.1f}%  {f}" for f, c in sorted(self_c.items(), key=lambda kv: -kv[1])[:top]]
    lines.append("  inclusive:")
    lines += [f"    {c * 100 / total:5.1f}%  {f}" for f, c in sorted(incl_c.items(), key=lambda kv: -kv[1])[:top * 2]]
    return lines


# ---------------------------------------------------------------------------------------------- HyperQueue

def bench_hq(root: Path, n: int) -> dict:
    try:
        from importlib.metadata import version

        import hyperqueue  # noqa: F401
        from hyperqueue import Job, LocalCluster
        from hyperqueue.cluster import WorkerConfig
    except ImportError as exc:
        return {"unavailable": f"hyperqueue not importable ({exc}); `pip install hyperqueue` to include it"}
    hq_dir, work = root / "hq-server", root / "hq-work"
    hq_dir.mkdir()
    work.mkdir()
    stamp = root / "hq-final.txt"
    cluster = None
    # HyperQueue's server and workers run inside this process (FFI) and print tables and progress bars:
    # send this process's stdout/stderr to a file while it runs.
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(root / "hq.log", "ab") as hq_log:
        os.dup2(hq_log.fileno(), 1)
        os.dup2(hq_log.fileno(), 2)
    try:
        cluster = LocalCluster(server_dir=str(hq_dir))
        for _ in range(NODES):
            cluster.start_worker(WorkerConfig(cores=SLOTS))
        client = cluster.client()

        warm = Job(default_workdir=work / "warmup")
        for _ in range(NODES * SLOTS):
            warm.program(["sleep", "1"], stdout=None, stderr=None)
        client.wait_for_jobs([client.submit(warm)])

        job = Job(default_workdir=work / "bench")
        tasks = [job.program(["true"]) for _ in range(n)]
        job.program(["sh", "-c", f"date +%s.%N > {stamp}"], deps=tasks)
        t0 = time.time()
        submitted = client.submit(job)
        t_submitted = time.time()
        ok = client.wait_for_jobs([submitted], raise_on_error=False)
        t_end = float(stamp.read_text().strip())
        return {"span": t_end - t0, "submit": t_submitted - t0, "ok": ok, "version": version("hyperqueue")}
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        if cluster is not None:
            try:
                cluster.stop()
            except Exception:
                pass
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


# ---------------------------------------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="runs per system (default 2000)")
    ap.add_argument("--k", type=int, default=15, help="single runs for the latency part (default 15)")
    ap.add_argument("--skip-hq", action="store_true", help="skip HyperQueue")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (serve.log, work dir, store)")
    ap.add_argument("--profile", type=Path, metavar="DIR",
                    help="py-spy (pip install py-spy) the serve process and one worker during the N runs; "
                         "raw profiles go to DIR and a summary is printed (it perturbs the timing)")
    args = ap.parse_args()
    n = args.n

    root = Path(tempfile.mkdtemp(prefix="juqueue-bench-"))
    log(f"temp dir {root}")
    try:
        t_x = bench_xargs(n)
        jq = bench_juqueue(root, n, args.k, args.profile)
        hq = {"unavailable": "skipped (--skip-hq)"} if args.skip_hq else bench_hq(root, n)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)

    r_x = n / t_x
    print(f"xargs    N={n}  {r_x:8.1f} runs/s  ({t_x:.3f} s wall, seq {n} | xargs -P 16 -n 1 true)")

    r_jq = None
    if "span" in jq:
        r_jq = n / jq["span"]
        print(f"juqueue  N={n}  {r_jq:8.1f} runs/s  ratio {r_jq / r_x:.2f} x xargs  "
              f"({jq['span']:.3f} s first queued_at -> last ended_at; {jq['completed']}/{jq['runs']} completed, "
              f"{jq['attempts']} attempts; first start {jq['first_start'] * 1000:.0f} ms after first queued; "
              f"warm-up used {jq['warm_nodes']} nodes; {jq['nodes_used']} nodes ran them, "
              f"{jq['nodes_cold']} of them started after the runs were queued)")
    if "error" in jq:
        print(f"juqueue  ERROR: {jq['error']}")

    r_hq = None
    if "unavailable" in hq:
        print(f"hq       N={n}  not measured: {hq['unavailable']}")
    elif "error" in hq:
        print(f"hq       N={n}  ERROR: {hq['error']}")
    else:
        r_hq = n / hq["span"]
        print(f"hq       N={n}  {r_hq:8.1f} runs/s  ratio {r_hq / r_x:.2f} x xargs  "
              f"({hq['span']:.3f} s submit -> final dependent task; hyperqueue {hq['version']}"
              f"{'' if hq['ok'] else '; SOME TASKS FAILED'})")

    med = None
    if jq.get("lat"):
        lat_ms = [x * 1000 for x in jq["lat"]]
        med = statistics.median(lat_ms)
        print(f"latency  K={len(lat_ms)}  queued->started median {med:.1f} ms  p90 {pct(lat_ms, 0.9):.1f} ms  "
              f"(min {min(lat_ms):.1f}, max {max(lat_ms):.1f}; {len(lat_ms) - jq['lat_cold']}/{len(lat_ms)} on a warm node)")
        print(f"latency  K={len(lat_ms)}  queued->published median {statistics.median(jq['ctl']) * 1000:.1f} ms (controller)  "
              f"published->started median {statistics.median(jq['wrk']) * 1000:.1f} ms (broker + worker)")

    if r_jq is not None:
        met = r_jq / r_x >= TARGET_RATIO
        print(f"target   throughput >= {TARGET_RATIO:.2f} x xargs at N={n}: {'met' if met else 'NOT met'} "
              f"({r_jq / r_x:.2f}){'' if n == 2000 else ' (the target is defined for N=2000)'}")
    else:
        print(f"target   throughput >= {TARGET_RATIO:.2f} x xargs: NOT measured")
    if med is not None:
        print(f"target   median latency < {TARGET_LATENCY_MS:.0f} ms: {'met' if med < TARGET_LATENCY_MS else 'NOT met'} ({med:.1f} ms)")
    else:
        print(f"target   median latency < {TARGET_LATENCY_MS:.0f} ms: NOT measured")
    if jq.get("left_after_stop"):
        print(f"warning  processes of the JuQueue work dir were left after stop and killed: {jq['left_after_stop']}")
    for name, path in (jq.get("profiles") or {}).items():
        print(f"profile  {name}: {path}")
        print("\n".join(summarize_profile(path)))
    if args.keep:
        print(f"kept     {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
