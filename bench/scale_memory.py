#!/usr/bin/env python3
"""Where a serve's memory goes with N live runs: tracemalloc over what `serve` does at start
(the definitions evaluated and applied, memory rebuilt from the store as `Recovery.load` does:
each live run's RunState with what decisions read, the run queue), top allocations by line.

Usage: python bench/scale_memory.py [--runs 20000] [--top 12]   (figures scale about linearly in N)
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import tracemalloc
from pathlib import Path

from juqueue.controller.records import RunState
from juqueue.controller.run_queue import RunQueue
from juqueue.definitions.evaluate import load_definitions
from juqueue.store.engine import make_engine
from juqueue.store.store import Store

from throughput import matrix_experiment  # bench/ is sys.path[0]


def top(snapshot: tracemalloc.Snapshot, n: int, label: str) -> None:
    stats = snapshot.statistics("lineno")
    total = sum(s.size for s in stats)
    print(f"## {label}: {total / 1e6:.1f} MB traced", flush=True)
    for s in stats[:n]:
        frame = s.traceback[0]
        print(f"  {s.size / 1e6:7.1f} MB {s.count:8d} blocks  {frame.filename.split('site-packages/')[-1]}:{frame.lineno}")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=20_000)
    p.add_argument("--top", type=int, default=12)
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="jq-mem-"))
    defs = root / "defs"
    defs.mkdir()
    (defs / "clusters.yaml").write_text("local:\n  type: local\n  num_slots: 8\n")
    (defs / "bench.yaml").write_text(matrix_experiment("bench", ["true"], args.runs))
    store = Store(make_engine(None, root / "work"))
    tracemalloc.start()
    result = load_definitions(defs, {"local"}, timeout_s=600)
    store.apply_definitions(result)
    top(tracemalloc.take_snapshot(), args.top, f"the definitions of {args.runs} runs loaded and applied (the reload)")
    del result
    gc.collect()
    tracemalloc.stop()
    tracemalloc.start()
    runs = {}
    queue = RunQueue()
    new = hasattr(store, "iter_active_runs")
    rows = store.iter_active_runs(RunState.COLUMNS) if new else store.active_runs()  # type: ignore[attr-defined]
    for row in rows:
        run = RunState.from_values(row) if new else RunState.from_row(row)  # type: ignore[attr-defined]
        runs[run.gid] = run
        queue.add_ready(run.gid, run.cluster, run.slots)
    gc.collect()
    top(tracemalloc.take_snapshot(), args.top, f"memory rebuilt: {len(runs)} live runs (RunState and the run queue)")
    print(f"## per live run: {tracemalloc.get_traced_memory()[0] / max(1, len(runs)):.0f} bytes", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
