#!/usr/bin/env python3
"""JuQueue API latency with 100,000 runs in the store, and the controller's batch time with and without feed clients.

One `juqueue serve` with a local cluster of 2 nodes x 8 slots; one YAML experiment (a `matrix:` sweep of N `true`
runs) dropped into the def dir and loaded by `POST /api/reload` (the user's own path; a reload of 100,000 takes
about a minute here, so the store module is not needed to fill it); while the nodes work through it:

1. Phase "no feed client": `--samples` requests each, p50/p95 in ms, of
   - `GET /api/runs?limit=100` (unfiltered page), `GET /api/runs?status=queued&status=completed&q=12&limit=100`,
     `GET /api/runs?offset=<0.9 N>&limit=100` (90,000 at the default N),
   - `GET /api/runs/{id}` (a random run of the sweep each time), `GET /api/experiments`, `GET /api/status`;
   then, after `--phase-s` seconds of the phase, the controller's batch p50/p95 from `/api/status` key `batch`.
2. Phase "5 feed clients": the same with 5 plain SSE readers on `GET /api/events` (httpx streaming, the token).

The batch figures need the live feed's `/api/status` key `batch`; without it the bench prints "not available" and
does not wait out the phases; without `GET /api/events` (404) it prints "feed not available" and skips phase 2.
The batch summary covers the controller's last five minutes, hence the default `--phase-s` of 300: each figure
then covers its own phase only.

Usage: python bench/api.py [--runs 100000] [--samples 50] [--phase-s 300] [--keep]
It never asserts: targets are printed as met / NOT met and the exit code is 0.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from throughput import Serve, log, matrix_experiment, pct  # the same serve set-up (bench/ is sys.path[0])

TARGET_API_P95_MS = 100.0
TARGET_BATCH_RATIO = 1.10
FEED_CLIENTS = 5
EXPERIMENT = "bench"


def endpoints(n: int) -> dict[str, tuple[str, dict | None]]:
    """Label → (path, params); `None` path parts are filled per request (a random run id)."""
    offset = max(0, int(0.9 * n))
    return {
        "runs page 100 unfiltered": ("/api/runs", {"limit": 100}),
        "runs page 100 queued+completed q=12": ("/api/runs", {"limit": 100, "status": ["queued", "completed"], "q": "12"}),
        f"runs page 100 offset {offset}": ("/api/runs", {"limit": 100, "offset": offset}),
        "one run GET /api/runs/{id}": ("/api/runs/{id}", None),
        "GET /api/experiments": ("/api/experiments", None),
        "GET /api/status": ("/api/status", None),
    }


def measure_api(client: httpx.Client, n: int, samples: int, rnd: random.Random) -> dict[str, list[float]]:
    """Per endpoint, `samples` wall times (ms) of a whole request with its body read; endpoints interleaved.
    A route this server does not have (404 on a fixed path: an older server) keeps an empty list."""
    eps = endpoints(n)
    times: dict[str, list[float]] = {label: [] for label in eps}
    missing: set[str] = set()
    for _ in range(samples):
        for label, (path, params) in eps.items():
            if label in missing:
                continue
            fixed = "{id}" not in path
            if not fixed:
                path = f"/api/runs/{EXPERIMENT}@r{rnd.randrange(n)}"
            t0 = time.perf_counter()
            resp = client.get(path, params=params)
            _ = resp.content
            elapsed = (time.perf_counter() - t0) * 1000
            if fixed and resp.status_code == 404:
                missing.add(label)
                continue
            resp.raise_for_status()
            times[label].append(elapsed)
    return times


class FeedReader(threading.Thread):
    """One plain SSE reader on /api/events: reads and counts messages, parses nothing else."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(daemon=True)
        self.url, self.token = url, token
        self.messages: dict[str, int] = {}
        self.error: str | None = None
        self.stop = threading.Event()
        self.connected = threading.Event()

    def run(self) -> None:
        try:
            with httpx.Client(timeout=httpx.Timeout(10, read=20)) as client:
                while not self.stop.is_set():
                    try:
                        self._stream(client)
                    except httpx.ReadTimeout:  # not even a keep-alive within 20 s: reconnect
                        continue
        except Exception as exc:  # a reader reports, it does not crash the bench
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.connected.set()

    def _stream(self, client: httpx.Client) -> None:
        with client.stream("GET", self.url + "/api/events", headers={"Authorization": f"Bearer {self.token}"}) as resp:
            resp.raise_for_status()
            self.connected.set()
            for line in resp.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                    self.messages[event] = self.messages.get(event, 0) + 1
                if self.stop.is_set():
                    return


def feed_available(srv: Serve) -> bool:
    with httpx.Client(timeout=10) as client:
        with client.stream("GET", srv.url + "/api/events", headers={"Authorization": f"Bearer {srv.token}"}) as resp:
            return resp.status_code != 404


def batch_summary(srv: Serve) -> dict | None:
    batch = srv.api("GET", "/api/status").json().get("batch")
    return batch if isinstance(batch, dict) else None


def live_counts(srv: Serve) -> str:
    counts = srv.api("GET", "/api/status").json().get("counts") or {}
    return ", ".join(f"{s} {counts.get(s, 0)}" for s in ("queued", "assigned", "running", "completed", "failed"))


def print_api(phase: str, times: dict[str, list[float]]) -> list[tuple[str, float]]:
    p95s = []
    for label, values in times.items():
        if not values:
            print(f"api      {label:38s} not available (404: this server has no such route)", flush=True)
            continue
        p50, p95 = statistics.median(values), pct(values, 0.95)
        p95s.append((f"{label} ({phase})", p95))
        print(f"api      {label:38s} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  max {max(values):7.1f} ms  "
              f"({len(values)} requests, {phase})", flush=True)
    return p95s


def print_batch(phase: str, batch: dict | None) -> None:
    if batch is None:
        print(f"batch    controller batch ({phase}): not available (no `batch` key in /api/status)", flush=True)
    elif batch.get("p95_ms") is None:
        print(f"batch    controller batch ({phase}): no batches recorded (count {batch.get('count')})", flush=True)
    else:
        print(f"batch    controller batch ({phase}): p50 {batch['p50_ms']:.1f} ms  p95 {batch['p95_ms']:.1f} ms  "
              f"({batch['count']} batches in the window)", flush=True)


def wait_busy(srv: Serve, timeout: float) -> None:
    """Until both nodes run runs (all 16 slots seen busy once), or the timeout."""
    deadline, best = time.time() + timeout, 0
    while time.time() < deadline:
        counts = srv.api("GET", "/api/status").json().get("counts") or {}
        best = max(best, counts.get("running", 0) + counts.get("assigned", 0))
        if best >= 16:
            return
        time.sleep(0.5)
    log(f"only {best} runs seen running at once after {timeout:.0f} s; measuring anyway")


def phase(srv: Serve, name: str, n: int, samples: int, phase_s: float, batch_on: bool,
          rnd: random.Random) -> tuple[list[tuple[str, float]], dict | None]:
    started = time.time()
    log(f"phase {name}: {samples} requests per endpoint")
    p95s = print_api(name, measure_api(srv.client, n, samples, rnd))
    batch = None
    if batch_on:
        left = phase_s - (time.time() - started)
        if left > 0:
            log(f"phase {name}: waiting {left:.0f} s more, so the batch window covers this phase")
            time.sleep(left)
        batch = batch_summary(srv)
    print_batch(name, batch if batch_on else None)
    print(f"store    at the end of phase {name}: {live_counts(srv)}", flush=True)
    if batch_on and not (srv.api("GET", "/api/status").json().get("counts") or {}).get("queued"):
        print(f"warning  the sweep ran out during phase {name}: its batch figure includes idle ticks "
              f"(more --runs keep the nodes busy to the end)", flush=True)
    return p95s, batch


def run(args: argparse.Namespace, root: Path) -> None:
    srv = Serve(root)
    readers: list[FeedReader] = []
    try:
        log(f"starting serve on port {srv.port}, work dir {srv.work_dir}")
        srv.start()
        srv.client.timeout = httpx.Timeout(900)  # a reload of 100,000 runs takes a while
        text = matrix_experiment(EXPERIMENT, ["true"], args.runs)
        log(f"putting {args.runs} runs in: one matrix experiment ({len(text) / 1e6:.1f} MB of YAML), POST /api/reload")
        t0 = time.perf_counter()
        srv.add_experiment(f"{EXPERIMENT}.yaml", text)
        total = int(srv.api("GET", "/api/runs", params={"limit": 1}).headers["X-Total-Count"])
        print(f"load     {total} runs in the store via one YAML matrix experiment + POST /api/reload: "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        srv.client.timeout = httpx.Timeout(60)
        wait_busy(srv, 120)
        print(f"store    at the start: {live_counts(srv)}", flush=True)

        batch_on = batch_summary(srv) is not None
        rnd = random.Random(1)
        p95s, batch_none = phase(srv, "no feed client", args.runs, args.samples, args.phase_s, batch_on, rnd)

        batch_feed = None
        if feed_available(srv):
            readers = [FeedReader(srv.url, srv.token) for _ in range(FEED_CLIENTS)]
            for r in readers:
                r.start()
            for r in readers:
                r.connected.wait(30)
            more, batch_feed = phase(srv, f"{FEED_CLIENTS} feed clients", args.runs, args.samples, args.phase_s,
                                     batch_on, rnd)
            p95s += more
            for r in readers:
                r.stop.set()
            for r in readers:
                r.join(5)
            got = [sum(r.messages.values()) for r in readers]
            errors = [r.error for r in readers if r.error]
            kinds = sorted({k for r in readers for k in r.messages})
            print(f"feed     {FEED_CLIENTS} SSE readers received {min(got)}-{max(got)} messages each "
                  f"(types: {', '.join(kinds) or 'none'}){'; errors: ' + '; '.join(errors) if errors else ''}",
                  flush=True)
        else:
            print("feed     feed not available (GET /api/events answers 404): the 5-client phase is skipped", flush=True)

        worst = max(p95s, key=lambda kv: kv[1])
        met = worst[1] < TARGET_API_P95_MS
        print(f"target   every API p95 < {TARGET_API_P95_MS:.0f} ms: {'met' if met else 'NOT met'} "
              f"(worst: {worst[0]}, {worst[1]:.1f} ms)", flush=True)
        if batch_none and batch_feed and batch_none.get("p95_ms") and batch_feed.get("p95_ms") is not None:
            ratio = batch_feed["p95_ms"] / batch_none["p95_ms"]
            print(f"target   controller batch p95 with {FEED_CLIENTS} feed clients within 10% of none: "
                  f"{'met' if ratio <= TARGET_BATCH_RATIO else 'NOT met'} ({batch_feed['p95_ms']:.1f} ms vs "
                  f"{batch_none['p95_ms']:.1f} ms, x{ratio:.2f})", flush=True)
        else:
            print(f"target   controller batch p95 with {FEED_CLIENTS} feed clients within 10% of none: "
                  f"not available (needs /api/status `batch` and GET /api/events)", flush=True)
    except Exception as exc:  # a benchmark reports, it does not crash
        print(f"error    {type(exc).__name__}: {exc}", flush=True)
        log(srv.log_tail())
    finally:
        for r in readers:
            r.stop.set()
        log("stopping serve")
        try:
            srv.stop()
        except Exception as exc:
            print(f"error    stop failed: {exc}", flush=True)
        if getattr(srv, "left_after_stop", []):
            print(f"warning  processes of the work dir were alive after the stop and were killed: {srv.left_after_stop}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=100_000, help="runs in the store (one matrix experiment of `true`)")
    ap.add_argument("--samples", type=int, default=50, help="requests per endpoint and phase")
    ap.add_argument("--phase-s", type=float, default=300.0,
                    help="least seconds per phase when the batch figures are available (the batch window is 5 min)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (serve.log, work dir, store)")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="jq-apibench-"))
    try:
        run(args, root)
    finally:
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
