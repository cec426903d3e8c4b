"""A real `juqueue serve` on a store written by the release before schema versions.

The work dir's store file is tests/fixtures/store_v1.sql, loaded; the definitions are the
ones it was made from (tests/fixtures/store_v1_defs). Serve must upgrade the store, keep
every finished run as it was (not rerun), and run what was still queued.
"""

from __future__ import annotations

import os

import json
import shutil
import sqlite3
from pathlib import Path

from helpers import FINAL, REPO, V1_FINISHED, V1_T0, Server, brief

from juqueue.paths import WorkDir
from juqueue.store.migrations import LATEST_VERSION

FIXTURES = REPO / "tests" / "fixtures"


def _v1_work_dir(workspace: Path) -> tuple[Path, Path]:
    defs = workspace / "defs"
    shutil.copytree(FIXTURES / "store_v1_defs", defs, dirs_exist_ok=True)
    work = WorkDir(workspace / "work")
    work.ensure_state_dir()
    conn = sqlite3.connect(work.db_file)
    conn.executescript((FIXTURES / "store_v1.sql").read_text())
    conn.close()
    return defs, work.root


def test_serve_upgrades_a_v1_store_and_keeps_its_runs(workspace):
    defs, work = _v1_work_dir(workspace)
    server = Server(defs, work).start()
    try:
        server.wait_for(lambda runs: len(runs) == 7 and all(r["status"] in FINAL for r in runs), 120, "the queued runs to finish")
        runs = {r["global_id"]: r for r in json.loads(server.cli("runs", "--json").stdout)}
        assert len(runs) == 7
        # Finished before the upgrade: exactly as they were, not rerun.
        assert {gid: brief(runs[gid]) for gid in V1_FINISHED} == V1_FINISHED
        assert brief(runs["legacy@after_bad"]) == ("failed", 0, None, None, V1_T0 + 8)
        assert runs["legacy@after_bad"]["reason"] == "dependency legacy@bad failed"
        detail = server.run("legacy@ok_first")
        assert [e["kind"] for e in detail["events"]] == ["defined", "assigned", "running", "completed"]
        # Queued before the upgrade: run now, the interrupted one as its second attempt.
        assert runs["legacy@waiting"]["status"] == "completed" and runs["legacy@waiting"]["attempt"] == 1
        assert runs["legacy@interrupted"]["status"] == "completed" and runs["legacy@interrupted"]["attempt"] == 2
        assert runs["legacy@interrupted"]["ended_at"] > V1_T0 + 1000
        out = WorkDir(work).attempt_log("legacy", "interrupted", 2, "out")
        assert out.read_text().strip() == "interrupted before"
    finally:
        server.stop()
    log = server.log.read_text()
    assert "migrating" in log and f"to schema version {LATEST_VERSION}" in log, log[-3000:]

    conn = sqlite3.connect(WorkDir(work).db_file)
    try:
        assert conn.execute("SELECT id, version FROM schema_version").fetchall() == [(1, LATEST_VERSION)]
        cols = [row[1] for row in conn.execute("PRAGMA table_info(attempts)")]
        assert "stop_reason" in cols
        attempts = conn.execute("SELECT global_id, number, stop_reason FROM attempts WHERE id <= 6 ORDER BY id").fetchall()
        assert [a[2] for a in attempts] == [None] * 6  # the old attempts are unchanged
        assert conn.execute("SELECT count(*) FROM attempts").fetchone()[0] == 8  # two new ones
        assert conn.execute("SELECT count(*) FROM events WHERE id <= 27").fetchone()[0] == 27
    finally:
        conn.close()


def test_serve_refuses_a_store_newer_than_it_knows(workspace):
    defs, work = _v1_work_dir(workspace)
    conn = sqlite3.connect(WorkDir(work).db_file)
    conn.execute("CREATE TABLE schema_version (id INTEGER PRIMARY KEY, version INTEGER NOT NULL, written_by VARCHAR)")
    conn.execute("INSERT INTO schema_version VALUES (1, 999, '99.0')")
    conn.commit()
    conn.close()
    before = _dump(WorkDir(work).db_file)
    server = Server(defs, work).start(wait=False)
    try:
        assert server.proc is not None and server.proc.wait(60) == 2
    finally:
        server.stop()
    log = server.log.read_text()
    assert "schema version 999 (written by juqueue 99.0)" in log, log[-3000:]
    assert f"up to version {LATEST_VERSION}" in log and "Upgrade juqueue" in log and "another work dir" in log
    assert "Traceback" not in log
    assert not _processes_of(work), "a refused store left processes behind (the broker?)"
    assert _dump(WorkDir(work).db_file) == before  # content unchanged (the journal mode may be)


def _processes_of(work: Path) -> list[str]:
    """Command lines of live processes that name the work dir."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if str(work).encode() in cmdline:
                found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def _dump(db: Path) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()
