"""Work dirs as earlier releases left them, shared by the migration's and the store reader's unit tests."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from juqueue.paths import WorkDir
from juqueue.workdir import migrate_work_dir

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def no_jobs():
    return []


def not_a_worker(_pid, _node):
    return False


def old_layout(root: Path, nodes: list[tuple] = ()) -> Path:
    """What a release before `.juqueue/` left: store, token, broker, nodes, runs, logs at the top."""
    root.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(root / "juqueue.db")
    conn.executescript((FIXTURES / "store_v1.sql").read_text())
    conn.execute("DELETE FROM nodes")
    for name, backend, state, job_id in nodes:
        conn.execute("INSERT INTO nodes (name, cluster, backend, token, state, slots_total, job_id, created_at) "
                     "VALUES (?, 'c', ?, ?, ?, 1, ?, 0)", (name, backend, "tok-" + name, state, job_id))
    conn.commit()
    conn.close()
    (root / "token").write_text("old-token\n")
    os.chmod(root / "token", 0o600)
    (root / "server.json").write_text(json.dumps({"url": "http://127.0.0.1:1", "pid": 1}))
    (root / "juqueue.lock").write_text("host=x pid=1\n")
    (root / "broker").mkdir()
    (root / "broker" / "url").write_text("redis://:pw@127.0.0.1:1/0\n")
    (root / "broker" / "broker.json").write_text(json.dumps({"port": 1, "password": "pw"}))
    (root / "broker" / "juqueue.aof").write_text("aof")
    (root / "nodes" / "local-1").mkdir(parents=True)
    (root / "nodes" / "local-1" / "worker.log").write_text("w")
    (root / "beat.log").write_text("b")
    (root / "beat-schedule").write_text("s")
    for exp, run in (("legacy", "ok_first"), ("legacy", "bad"), ("token", "r1"), ("runs", "r2")):
        logs = root / "runs" / exp / run / "logs"
        logs.mkdir(parents=True)
        (logs / "attempt-1.out").write_text(f"{exp}/{run}\n")
    (root / "runs" / "legacy" / "ok_first" / "ckpt").write_text("step 7")
    return root


def migrate(root: Path, **kw):
    kw.setdefault("slurm_jobs", no_jobs)
    kw.setdefault("pid_is_worker", not_a_worker)
    work = WorkDir(root)
    work.ensure_state_dir()
    return migrate_work_dir(work, **kw)


def original_run(root: Path, exp: str, run: str, content: str | None) -> Path:
    d = root / exp / run
    (d / "logs").mkdir(parents=True, exist_ok=True)
    if content is not None:
        (d / "juqueue-run.json").write_text(content)
    return d

