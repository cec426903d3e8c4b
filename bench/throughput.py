#!/usr/bin/env python3
"""JuQueue throughput and latency benchmark, side by side with xargs and HyperQueue.

Targets (printed as met / NOT met; the exit code is always 0):
- throughput of N = 6000 `true` runs >= 1.0 x HyperQueue in the same round, median of 3 rounds;
- median queued -> started < 5 ms on a warm node with a free slot;
- each worker idle: CPU < 1% of one core over 60 s and RSS < 100 MB.

Each round, for every N (default 2000 and 6000), one after the other on this machine:
1. xargs:      `seq N | xargs -P 16 -n 1 true` (the machine's own limit for spawning N processes)
2. JuQueue:    N `true` runs through one `juqueue serve` with a local cluster of 2 nodes x 8 slots,
               warmed once and kept warm; timed by JuQueue's own records (first queued_at -> last
               ended_at); one live-feed client (GET /api/events) stays connected throughout.
3. HyperQueue: N `true` tasks on a LocalCluster of 2 workers x 8 cores, warmed once (optional:
               `pip install hyperqueue`), timed from submit to the end of one final task that
               depends on all others.
Then: latency (K single-run experiments on the warm nodes: started_at - queued_at from the
store) and the workers' idle CPU and RSS. CPU per run is each process's own CPU while the N
runs went through, divided by N.

Usage: python bench/throughput.py [--n 2000,6000] [--rounds 3] [--k 15] [--idle 60] [--skip-hq] [--keep]
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
import traceback
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # support/: helpers shared with the tests

from support.processes import free_port, kill_pids, work_dir_pids  # noqa: E402
from support.serve import launch_serve, log_tail, wait_serve_ready  # noqa: E402
from throughput_hq import HyperQueue, Redirect  # noqa: E402
from throughput_procs import FeedListener, broker_calls, cpu_delta, cpu_snapshot, roles, rss_mb  # noqa: E402
from throughput_profile import start_profilers, stop_profilers, summarize_profile  # noqa: E402

from juqueue.paths import WorkDir  # noqa: E402

FINAL = ("completed", "failed", "cancelled")
LIVE = ("queued", "assigned", "running")
SLOTS, NODES = 8, 2
TARGET_N = 6000  # the throughput target is defined for this N ...
TARGET_HQ_RATIO = 1.0  # ... as JuQueue's rate over HyperQueue's in the same round, median of the rounds
TARGET_LATENCY_MS = 5.0  # median queued -> started on a warm node with a free slot
TARGET_IDLE_CPU_PCT = 1.0  # a worker with nothing to run, over the idle period
TARGET_RSS_MB = 100


_ERR = sys.stderr  # the bench's own stderr (HyperQueue's output goes to hq.log while it runs)


def log(msg: str) -> None:
    print(f"# {msg}", file=_ERR, flush=True)


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


class JuQueueBench:
    """One serve with a local cluster of 2 nodes x 8 slots, warmed once and kept warm for every
    round; one live-feed client connected throughout."""

    def __init__(self, root: Path) -> None:
        self.srv = Serve(root)
        self.feed: FeedListener | None = None
        self.role_of: dict[int, str] = {}

    def start(self) -> None:
        srv = self.srv
        log(f"juqueue: starting serve on port {srv.port}, work dir {srv.work_dir}")
        srv.start()
        self.feed = FeedListener(srv.url, srv.token)
        self.feed.start()
        log(f"juqueue: warm-up ({NODES * SLOTS} x sleep 1)")
        srv.add_experiment("warmup.yaml", matrix_experiment("warmup", ["sleep", "1"], NODES * SLOTS))
        srv.wait_experiment_final("warmup", NODES * SLOTS, 0.5, 180)
        with srv.db() as db:
            self.warm_nodes = db.execute(
                "select count(distinct a.node) from attempts a join runs r on r.global_id = a.global_id "
                "where r.experiment = 'warmup'").fetchone()[0]
        self.role_of = roles(srv.work_dir_pids(), srv.proc.pid)
        import redis

        self.broker = redis.Redis.from_url(WorkDir(srv.work_dir).broker_url_file.read_text().strip(), decode_responses=True)

    def run(self, n: int, name: str, profile_dir: Path | None = None) -> dict:
        """n `true` runs as one matrix experiment; timed by the store (first queued_at -> last ended_at)."""
        srv, out = self.srv, {}
        log(f"juqueue: {n} x true ({name})")
        spies = []
        if profile_dir:
            workers = sorted(pid for pid, role in self.role_of.items() if role.startswith("worker"))
            spies = start_profilers([("serve", srv.proc.pid)] + [("worker0", pid) for pid in workers[:1]],
                                    profile_dir / name, log)
        cpu0, calls0 = cpu_snapshot(self.role_of), broker_calls(self.broker)
        try:
            srv.add_experiment(f"{name}.yaml", matrix_experiment(name, ["true"], n))
            srv.wait_experiment_final(name, n, 0.5, max(300, n / 5))
        finally:
            out["cpu"] = cpu_delta(cpu0, cpu_snapshot(self.role_of))
            calls1 = broker_calls(self.broker)
            out["calls"] = {cmd: calls1[cmd] - calls0.get(cmd, 0) for cmd in calls1 if calls1[cmd] > calls0.get(cmd, 0)}
            out["profiles"] = stop_profilers(spies)
        with srv.db() as db:
            q0, e1, cnt, ok = db.execute(
                "select min(queued_at), max(ended_at), count(*), sum(status = 'completed') from runs "
                "where experiment = ?", (name,)).fetchone()
            attempts, s0 = db.execute("select count(*), min(a.started_at) from attempts a join runs r "
                                      "on r.global_id = a.global_id where r.experiment = ?", (name,)).fetchone()
            # nodes the N runs used, and how many of them were started only after the runs were queued
            used, cold = db.execute(
                "select count(*), coalesce(sum(n.created_at > ?), 0) from nodes n where n.name in "
                "(select a.node from attempts a join runs r on r.global_id = a.global_id where r.experiment = ?)",
                (q0, name)).fetchone()
        out.update(span=e1 - q0, first_start=s0 - q0, runs=cnt, completed=ok, attempts=attempts, nodes_used=used,
                   nodes_cold=cold)
        return out

    def latency(self, k: int) -> dict:
        """K single runs on the warm nodes (free slots): queued -> published -> started from the store."""
        srv = self.srv
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
        return {"lat": lat, "ctl": ctl, "wrk": wrk, "lat_cold": cold}

    def idle(self, seconds: float) -> dict[str, tuple[float, float]]:
        """Each worker's CPU share of one core and RSS (MB) over `seconds` with nothing to run."""
        workers = {pid: role for pid, role in self.role_of.items() if role.startswith("worker")}
        log(f"juqueue: workers idle for {seconds:g} s")
        cpu0 = cpu_snapshot(workers)
        time.sleep(seconds)
        cpu = cpu_delta(cpu0, cpu_snapshot(workers))
        return {role: (cpu[role] / seconds, rss_mb(pid) or 0.0) for pid, role in workers.items() if role in cpu}

    def stop(self) -> list[int]:
        log("juqueue: stopping serve")
        if self.feed is not None:
            self.feed.stop()
        self.srv.stop()
        return getattr(self.srv, "left_after_stop", [])

# ---------------------------------------------------------------------------------------------- main

def rounds(args: argparse.Namespace, res: dict, jq: JuQueueBench, hq: HyperQueue) -> None:
    """Each round runs every N on xargs, JuQueue and HyperQueue, one after the other, so the
    three systems see the same load; a failing part ends the rounds (what ran is kept in `res`)."""
    for r in range(args.rounds):
        for n in args.n:
            log(f"round {r + 1}/{args.rounds}, N={n}: xargs")
            res[n]["xargs"].append(n / bench_xargs(n))
            out = jq.run(n, f"bench{n}r{r + 1}", args.profile if r == 0 else None)
            res[n]["juqueue"].append(out)
            if hq.cluster is not None:
                log(f"round {r + 1}/{args.rounds}, N={n}: hq")
                res[n]["hq"].append(hq.run(n))


def med(values: list[float]) -> float:
    return statistics.median(values)


def report(args: argparse.Namespace, res: dict, jq: JuQueueBench, hq: HyperQueue, lat: dict | None,
           idle: dict | None, out) -> None:  # type: ignore[no-untyped-def]
    def p(line: str = "") -> None:
        print(line, file=out)

    hq_ratio_at: dict[int, float] = {}
    for n in args.n:
        x, j, h = res[n]["xargs"], res[n]["juqueue"], res[n]["hq"]
        for i in range(len(j)):
            r_j = n / j[i]["span"]
            r_h = n / h[i]["span"] if i < len(h) else None
            p(f"round {i + 1}  N={n:<5} xargs {x[i]:7.1f}  juqueue {r_j:6.1f}  "
              + (f"hq {r_h:6.1f}  juqueue/hq {r_j / r_h:4.2f}  " if r_h else "hq   -  ")
              + f"juqueue/xargs {r_j / x[i]:4.2f}  runs/s")
        if not j:
            continue
        rj = [n / o["span"] for o in j]
        last = j[-1]
        p(f"xargs    N={n:<5} median {med(x):7.1f} runs/s  (seq {n} | xargs -P 16 -n 1 true)")
        ratio_x = med([rj[i] / x[i] for i in range(len(rj))])
        line = f"juqueue  N={n:<5} median {med(rj):7.1f} runs/s  {ratio_x:.2f} x xargs"
        if h:
            hq_ratio_at[n] = med([rj[i] / (n / h[i]["span"]) for i in range(min(len(rj), len(h)))])
            line += f", {hq_ratio_at[n]:.2f} x hq"
        p(line + f"  (medians of {len(rj)} rounds' rates and ratios; last round: {last['completed']}/{last['runs']} "
          f"completed, {last['attempts']} attempts, first start {last['first_start'] * 1000:.0f} ms after first "
          f"queued, {last['nodes_used']} nodes, {last['nodes_cold']} started after the runs were queued)")
        if hq.unavailable:
            p(f"hq       N={n:<5} not measured: {hq.unavailable}")
        elif h:
            bad = "" if all(o["ok"] for o in h) else "; SOME TASKS FAILED"
            p(f"hq       N={n:<5} median {med([n / o['span'] for o in h]):7.1f} runs/s  "
              f"{med([(n / h[i]['span']) / x[i] for i in range(len(h))]):.2f} x xargs  (hyperqueue {hq.version}{bad})")
        roles_ = sorted({role for o in j for role in o["cpu"]})
        per_run = {role: med([o["cpu"].get(role, 0.0) for o in j]) / n * 1000 for role in roles_}
        line = "  ".join(f"{role} {v:.2f}" for role, v in per_run.items())
        total = sum(v for role, v in per_run.items())
        line = f"cpu      N={n:<5} per run, ms: {line}  (juqueue total {total:.2f})"
        if h:
            line += f"  hq {med([o['cpu'] for o in h]) / n * 1000:.2f} (its server and workers, in the bench process)"
        p(line)
        calls = [o.get("calls") or {} for o in j]
        if any(calls):
            per = {cmd: med([c.get(cmd, 0) for c in calls]) / n for cmd in set().union(*calls)}
            top = "  ".join(f"{cmd} {v:.2f}" for cmd, v in sorted(per.items(), key=lambda kv: -kv[1]) if v >= 0.05)
            p(f"broker   N={n:<5} commands per run: {sum(per.values()):.2f}  ({top})")
    if lat:
        lat_ms = [v * 1000 for v in lat["lat"]]
        k = len(lat_ms)
        p(f"latency  K={k}  queued->started median {med(lat_ms):.1f} ms  p90 {pct(lat_ms, 0.9):.1f} ms  "
          f"(min {min(lat_ms):.1f}, max {max(lat_ms):.1f}; {k - lat['lat_cold']}/{k} on a warm node)")
        p(f"latency  K={k}  queued->published median {med(lat['ctl']) * 1000:.1f} ms (controller)  "
          f"published->started median {med(lat['wrk']) * 1000:.1f} ms (broker + worker)")
    if idle:
        p("idle     " + "  ".join(f"{role} {cpu * 100:.2f}% of a core, RSS {rss:.0f} MB" for role, (cpu, rss) in sorted(idle.items()))
          + f"  (over {args.idle:g} s, nothing to run)")
    feed = jq.feed
    if feed is not None:
        p(f"feed     one live-feed client connected throughout: {feed.messages} messages"
          + (f" ({feed.error})" if feed.error else ""))
    n_t = TARGET_N if TARGET_N in hq_ratio_at else (max(hq_ratio_at) if hq_ratio_at else None)
    if n_t is not None:
        met = hq_ratio_at[n_t] >= TARGET_HQ_RATIO
        p(f"target   throughput >= {TARGET_HQ_RATIO:.2f} x HyperQueue at N={TARGET_N} (median of {len(res[n_t]['juqueue'])} rounds): "
          f"{'met' if met else 'NOT met'} ({hq_ratio_at[n_t]:.2f}{'' if n_t == TARGET_N else f' at N={n_t}'})")
    else:
        p(f"target   throughput >= {TARGET_HQ_RATIO:.2f} x HyperQueue at N={TARGET_N}: NOT measured")
    if lat:
        m = med(lat["lat"]) * 1000
        p(f"target   median queued->started < {TARGET_LATENCY_MS:.0f} ms: {'met' if m < TARGET_LATENCY_MS else 'NOT met'} ({m:.1f} ms)")
    if idle:
        worst_cpu = max(c for c, _ in idle.values()) * 100
        worst_rss = max(r for _, r in idle.values())
        met = worst_cpu < TARGET_IDLE_CPU_PCT and worst_rss < TARGET_RSS_MB
        p(f"target   worker idle CPU < {TARGET_IDLE_CPU_PCT:g}% of a core and RSS < {TARGET_RSS_MB} MB: "
          f"{'met' if met else 'NOT met'} (worst {worst_cpu:.2f}%, {worst_rss:.0f} MB)")
    for n in args.n:
        for o in res[n]["juqueue"]:
            for name, path in (o.get("profiles") or {}).items():
                p(f"profile  N={n} {name}: {path}")
                p("\n".join(summarize_profile(path)))


def main() -> int:
    global _ERR
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=lambda v: [int(x) for x in v.split(",")], default=[2000, 6000],
                    help="runs per system, comma-separated (default 2000,6000)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds; medians are taken over them (default 3)")
    ap.add_argument("--k", type=int, default=15, help="single runs for the latency part (default 15)")
    ap.add_argument("--idle", type=float, default=60.0, help="seconds the workers' idle CPU is measured (default 60; 0: skip)")
    ap.add_argument("--skip-hq", action="store_true", help="skip HyperQueue")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (serve.log, work dir, store, hq.log)")
    ap.add_argument("--profile", type=Path, metavar="DIR",
                    help="py-spy (pip install py-spy) the serve process and one worker during the first round; "
                         "raw profiles go to DIR and a summary is printed (it perturbs the timing)")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="juqueue-bench-"))
    log(f"temp dir {root}")
    hq = HyperQueue(root, NODES, SLOTS)
    jq = JuQueueBench(root)
    redirect = None if args.skip_hq else Redirect(root / "hq.log")
    out = sys.stdout if redirect is None else redirect.out
    if redirect is not None:
        _ERR = redirect.err
    res: dict = {n: {"xargs": [], "juqueue": [], "hq": []} for n in args.n}
    lat = idle = None
    left: list[int] = []
    try:
        if args.skip_hq:
            hq.unavailable = "skipped (--skip-hq)"
        else:
            log("hq: starting a LocalCluster and warming it")
            hq.start()
        jq.start()
        rounds(args, res, jq, hq)
        lat = jq.latency(args.k) if args.k else None
        idle = jq.idle(args.idle) if args.idle else None
    except Exception as exc:  # a benchmark reports, it does not crash
        print(f"ERROR    {type(exc).__name__}: {exc}", file=out)
    finally:
        try:
            left = jq.stop()
        except Exception as exc:
            print(f"ERROR    stop failed: {exc}", file=out)
        hq.stop()
        try:
            report(args, res, jq, hq, lat, idle, out)
        except Exception:
            traceback.print_exc(file=out)
        if left:
            print(f"warning  processes of the JuQueue work dir were left after stop and killed: {left}", file=out)
        if args.keep:
            print(f"kept     {root}", file=out)
        if redirect is not None:
            redirect.restore()
            _ERR = sys.stderr
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
