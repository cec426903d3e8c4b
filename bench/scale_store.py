"""A store that has seen N attempts, made fast through the store module (bench/scale.py part `attempts`).

200 ended nodes of 8 slots, N/5 final runs of one experiment no longer defined (so a reload leaves them alone),
5 ended attempts each (4 interrupted, 1 completed), written by `Store.commit` in chunks as the controller writes
attempts (a store keeping running totals keeps them from these commits)."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import insert

from juqueue.store.engine import make_engine
from juqueue.store.store import Store, WriteBatch
from juqueue.store.tables import ExperimentRow, NodeRow, RunRow

NODES, PER_RUN, CHUNK = 200, 5, 50_000
T0 = 1_700_000_000.0


def fill_store(work_dir: Path, attempts: int) -> None:
    engine = make_engine(None, work_dir)
    store = Store(engine)
    runs = max(1, attempts // PER_RUN)
    with engine.begin() as conn:
        conn.execute(insert(ExperimentRow), [{"name": "old", "source_file": "old.yaml", "defined": False, "fingerprint": ""}])
        conn.execute(insert(NodeRow), [
            {"name": f"old-{i}", "cluster": "local", "backend": "local", "token": "t", "state": "gone", "slots_total": 8,
             "created_at": T0, "started_at": T0, "ended_at": T0 + 86_400, "billed_from": T0, "billed_until": T0 + 86_400,
             "billed_estimated": False} for i in range(NODES)])
        spec = json.dumps({"cmd": ["true"]})
        for start in range(0, runs, CHUNK):
            conn.execute(insert(RunRow), [
                {"global_id": f"old@r{i}", "experiment": "old", "run_id": f"r{i}", "cluster": "local", "status": "completed",
                 "attempt": PER_RUN, "exit_code": 0, "node": f"old-{i % NODES}", "defined": False, "spec_json": spec,
                 "fingerprint": "", "depends_on": "[]", "queued_at": T0, "started_at": T0 + i * 0.01,
                 "ended_at": T0 + i * 0.01 + 5} for i in range(start, min(runs, start + CHUNK))])
    batch = WriteBatch()
    for i in range(runs):
        for n in range(1, PER_RUN + 1):
            started = T0 + i * 0.01 + n
            batch.new_attempts.append({
                "global_id": f"old@r{i}", "number": n, "node": f"old-{(i + n) % NODES}", "slot": 0, "slots": "[0]",
                "published_at": started - 0.1, "started_at": started, "ended_at": started + 1.0,
                "exit_code": 0, "end_reason": "exited" if n == PER_RUN else "interrupted",
                "interrupted_by": None if n == PER_RUN else "node lost"})
        if len(batch.new_attempts) >= CHUNK:
            store.commit(batch)
            batch = WriteBatch()
    store.commit(batch)
    engine.dispose()
