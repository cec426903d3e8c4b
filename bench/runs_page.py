"""The runs list's SQL at 100,000 runs: one page (100) and its total, per filter, through the store.

Usage: python bench/runs_page.py [--runs 100000] [--db-url URL] [--repeat 20] [--without-indexes]
Prints the median and p95 milliseconds of `list_runs` (one page) + `count_runs` (the total) and of
`run_ids` (a selection's one query) per filter, on a fresh store (SQLite in a temp dir by default).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert

from juqueue.store.engine import make_engine
from juqueue.store.run_query import RunFilter
from juqueue.store.store import Store
from juqueue.store.tables import RunRow

RUN_LIST_INDEXES = ("ix_runs_experiment_run_id", "ix_runs_status_experiment_run_id", "ix_runs_cluster_status", "ix_runs_node_cluster_status")
STATUSES = ["completed"] * 70 + ["failed"] * 10 + ["queued"] * 15 + ["running"] * 4 + ["held"]


def fill(store: Store, n: int, seed: int = 1) -> None:
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        exp, status = f"exp{i % 10}", rnd.choice(STATUSES)
        started = status not in ("queued", "held")
        rows.append({"global_id": f"{exp}@run{i:06d}", "experiment": exp, "run_id": f"run{i:06d}",
                     "cluster": "a" if i % 3 else "b", "status": status, "attempt": int(started),
                     "node": f"node-{rnd.randrange(50)}" if started else None, "spec_json": '{"cmd": ["true"]}' + " " * 400,
                     "queued_at": float(i), "started_at": float(i) + 1 if started else None,
                     "ended_at": float(i) + 2 if status in ("completed", "failed") else None})
    with store.engine.begin() as conn:
        conn.execute(insert(RunRow), rows)
    if store.engine.dialect.name == "postgresql":  # what autovacuum does soon after a bulk load
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE runs")


CASES = {
    "unfiltered, page 1": (RunFilter(), 0, None),
    "unfiltered, offset 90000": (RunFilter(), 90_000, None),
    "failed+queued, q=12": (RunFilter.of(["failed", "queued"], q="12"), 0, None),
    "failed of exp3": (RunFilter.of(["failed"], "exp3"), 0, None),
    "cluster b, node-7": (RunFilter.of(cluster="b", node="node-7"), 0, None),
    "queued, sort -queued_at": (RunFilter.of(["queued"]), 0, "-queued_at"),
}


def measure(store: Store, repeat: int) -> None:
    for name, (where, offset, sort) in CASES.items():
        page, ids = [], []
        for _ in range(repeat):
            t0 = time.perf_counter()
            store.list_runs(where=where, offset=offset, limit=100, sort=sort)
            store.count_runs(where)
            page.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            store.run_ids(where)
            ids.append((time.perf_counter() - t0) * 1000)
        page.sort()
        ids.sort()
        print(f"{name:28s} page+total p50 {statistics.median(page):7.1f} ms  p95 {page[int(0.95 * (len(page) - 1))]:7.1f} ms"
              f"   ids p50 {statistics.median(ids):7.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--db-url", default=None)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--without-indexes", action="store_true", help="drop schema version 6's indexes first (the before)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(args.db_url, Path(tmp))
        store = Store(engine)
        if args.without_indexes:
            with engine.begin() as conn:
                for index in RUN_LIST_INDEXES:
                    conn.exec_driver_sql(f"DROP INDEX {index}")
        t0 = time.perf_counter()
        fill(store, args.runs)
        print(f"{args.runs} runs written in {time.perf_counter() - t0:.1f} s")
        measure(store, args.repeat)
        engine.dispose()


if __name__ == "__main__":
    main()
