#!/usr/bin/env python3
"""The dashboard in Chromium with 100,000 runs in the store: first paint, bytes moved, and what open pages cost the controller.

One `juqueue serve` with a local cluster of 2 nodes x 8 slots (bench/throughput.py's set-up), one YAML matrix sweep
of N `true` runs loaded by `POST /api/reload`; while the nodes work through it:

1. Phase "no page": `--phase-s` seconds with no browser; then the controller's batch p50/p95 (`/api/status` `batch`,
   a window of the last 5 minutes, hence the default of 300 s per phase).
2. Paint: for the overview (`/#/`) and the runs page (`/#/runs`), each in a fresh browser context (cold cache), the
   time from navigation start to the browser's first contentful paint (the shell) and to the first frame showing the
   data (the overview: its clusters, drawn from /api/status, and its experiments table, from /api/experiments; the
   runs page: its first row; a MutationObserver stamps each, then the next animation frame),
   and the bytes received in the first 5 s (Chrome DevTools Network events: every response, the feed's stream
   included). A screenshot of each page is written and its path printed.
3. Phase "3 pages open": overview, runs and usage pages open (visible, each its own context) for `--phase-s`
   seconds; then the batch p50/p95 again.

Targets: data painted in under 1 s, under 1 MB in the first 5 s, batch p95 with 3 pages within 10% of none.
Drives Debian's chromium (`/usr/bin/chromium`) through Playwright, headless.

Usage: python bench/dashboard.py [--runs 100000] [--phase-s 300 | 0 (paint only)] [--keep]
It never asserts: targets are printed as met / NOT met and the exit code is 0.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import httpx

from api import batch_summary, live_counts, print_batch, wait_busy  # bench/ is sys.path[0]
from throughput import Serve, log, matrix_experiment

TARGET_PAINT_S = 1.0
TARGET_BYTES = 1_000_000
TARGET_BATCH_RATIO = 1.10
WINDOW_S = 5.0
EXPERIMENT = "bench"
PAGES = {"overview": ("/#/", {"clusters": "#clusters .card", "experiments": "#experiments tbody tr"}),
         "runs": ("/#/runs", {"rows": "#runs tbody tr"})}
OPEN_PAGES = ("/#/", "/#/runs", "/#/usage")

# Stamps performance.now() in window.__paint[name] at the first animation frame after its selector appears.
PAINT_PROBE = """
(() => {
  const selectors = %s;
  window.__paint = {};
  const look = () => {
    for (const [name, sel] of Object.entries(selectors)) {
      if (!(name in window.__paint) && document.querySelector(sel)) {
        window.__paint[name] = null;
        requestAnimationFrame(() => { window.__paint[name] = performance.now(); });
      }
    }
  };
  new MutationObserver(look).observe(document, { childList: true, subtree: true });
})();
"""


def chromium() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        raise RuntimeError("chromium not found (Debian package `chromium`)")
    return path


class Bytes:
    """Bytes received per request from DevTools: the larger of the streamed chunks and the finished total."""

    def __init__(self, cdp) -> None:  # type: ignore[no-untyped-def]
        self.chunks: dict[str, int] = {}
        self.finished: dict[str, int] = {}
        cdp.on("Network.dataReceived", lambda e: self.chunks.__setitem__(
            e["requestId"], self.chunks.get(e["requestId"], 0) + int(e.get("encodedDataLength") or 0)))
        cdp.on("Network.loadingFinished", lambda e: self.finished.__setitem__(
            e["requestId"], int(e.get("encodedDataLength") or 0)))
        cdp.send("Network.enable")

    def total(self) -> int:
        ids = set(self.chunks) | set(self.finished)
        return sum(max(self.chunks.get(i, 0), self.finished.get(i, 0)) for i in ids)


def measure_page(browser, srv: Serve, name: str, path: str, selectors: dict[str, str], shots: Path) -> dict:  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.goto(f"{srv.url}/static/app.css")  # any public page of the origin, to set the cookie on
        context.add_cookies([{"name": f"juqueue_token_{srv.port}", "value": srv.token, "url": srv.url}])
        context.add_init_script(PAINT_PROBE % json.dumps(selectors))
        page = context.new_page()
        counter = Bytes(context.new_cdp_session(page))
        t0 = time.monotonic()
        page.goto(srv.url + path)
        page.wait_for_function(f"Object.values(window.__paint || {{}}).filter((v) => v !== null).length === {len(selectors)}",
                               timeout=120_000)
        left = WINDOW_S - (time.monotonic() - t0)
        if left > 0:
            page.wait_for_timeout(left * 1000)
        moved = counter.total()
        fcp = page.evaluate("(performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime || null")
        data = page.evaluate("window.__paint")
        shot = shots / f"dashboard-{name}.png"
        page.screenshot(path=str(shot), full_page=False)
        return {"fcp_s": fcp / 1000 if fcp else None, "data_s": {k: v / 1000 for k, v in data.items()}, "bytes": moved,
                "shot": shot}
    finally:
        context.close()


def hold_pages(browser, srv: Serve, seconds: float) -> None:  # type: ignore[no-untyped-def]
    contexts = []
    try:
        for path in OPEN_PAGES:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.add_cookies([{"name": f"juqueue_token_{srv.port}", "value": srv.token, "url": srv.url}])
            page = context.new_page()
            page.goto(srv.url + path)
            contexts.append(context)
        log(f"3 pages open ({', '.join(OPEN_PAGES)}); waiting {seconds:.0f} s")
        time.sleep(seconds)
    finally:
        for context in contexts:
            context.close()


def run(args: argparse.Namespace, root: Path) -> None:
    from playwright.sync_api import sync_playwright

    srv = Serve(root)
    try:
        log(f"starting serve on port {srv.port}, work dir {srv.work_dir}")
        srv.start()
        srv.client.timeout = httpx.Timeout(900)
        t0 = time.perf_counter()
        srv.add_experiment(f"{EXPERIMENT}.yaml", matrix_experiment(EXPERIMENT, ["true"], args.runs))
        total = int(srv.api("GET", "/api/runs", params={"limit": 1}).headers["X-Total-Count"])
        print(f"load     {total} runs in the store (one YAML matrix + POST /api/reload): {time.perf_counter() - t0:.1f} s",
              flush=True)
        srv.client.timeout = httpx.Timeout(60)
        wait_busy(srv, 120)
        print(f"store    at the start: {live_counts(srv)}", flush=True)

        batch_none = batch_pages = None
        if args.phase_s > 0:
            log(f"phase no page: {args.phase_s:.0f} s")
            time.sleep(args.phase_s)
            batch_none = batch_summary(srv)
            print_batch("no page", batch_none)

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium(), headless=True)
            try:
                for name, (path, selector) in PAGES.items():
                    m = measure_page(browser, srv, name, path, selector, root)
                    fcp = f"{m['fcp_s']:.2f} s" if m["fcp_s"] is not None else "n/a"
                    shown = ", ".join(f"{k} painted {v:.2f} s ({'met' if v < TARGET_PAINT_S else 'NOT met'}: < "
                                      f"{TARGET_PAINT_S:.0f} s)" for k, v in m["data_s"].items())
                    print(f"paint    {name:9s} first contentful paint {fcp}; {shown}; {m['bytes'] / 1e3:.1f} kB in the "
                          f"first {WINDOW_S:.0f} s ({'met' if m['bytes'] < TARGET_BYTES else 'NOT met'}: < 1 MB)",
                          flush=True)
                    print(f"shot     {name:9s} {m['shot']}", flush=True)
                if args.phase_s > 0:
                    hold_pages(browser, srv, args.phase_s)
            finally:
                browser.close()
        if args.phase_s > 0:
            batch_pages = batch_summary(srv)
            print_batch("3 pages open", batch_pages)
        print(f"store    at the end: {live_counts(srv)}", flush=True)
        if batch_none and batch_pages and batch_none.get("p95_ms") and batch_pages.get("p95_ms") is not None:
            ratio = batch_pages["p95_ms"] / batch_none["p95_ms"]
            print(f"target   controller batch p95 with 3 pages within 10% of none: "
                  f"{'met' if ratio <= TARGET_BATCH_RATIO else 'NOT met'} ({batch_pages['p95_ms']:.1f} ms vs "
                  f"{batch_none['p95_ms']:.1f} ms, x{ratio:.2f})", flush=True)
        else:
            why = "not measured (--phase-s 0)" if args.phase_s <= 0 else "not available (no `batch` in /api/status)"
            print(f"target   controller batch p95 with 3 pages: {why}", flush=True)
    except Exception as exc:  # a benchmark reports, it does not crash
        print(f"error    {type(exc).__name__}: {exc}", flush=True)
        log(srv.log_tail())
    finally:
        log("stopping serve")
        try:
            srv.stop()
        except Exception as exc:
            print(f"error    stop failed: {exc}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=100_000, help="runs in the store (one matrix experiment of `true`)")
    ap.add_argument("--phase-s", type=float, default=300.0,
                    help="seconds per phase (the batch window is 5 min); 0: paint and bytes only, no batch phases")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (screenshots, serve.log, work dir, store)")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="jq-dashbench-"))
    try:
        run(args, root)
    finally:
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
