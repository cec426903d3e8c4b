"""Work dirs of earlier releases: today's layout migrated by `serve`, the original JuQueue's statuses read."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest

from juqueue.definitions.validation import unsafe_name_reason
from juqueue.paths import LegacyWorkDir, WorkDir
from juqueue.server import ServeOptions, api_port, bind_unix_socket
from juqueue.errors import ConfigError
from juqueue.workdir_migration import (
    WorkDirMigrationError, live_nodes_in_store, migrate_work_dir, needs_migration, original_run_statuses,
)
from support.processes import free_port

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


def test_new_work_dir_is_marked_and_nothing_moves(tmp_path):
    report = migrate(tmp_path / "w")
    work = WorkDir(tmp_path / "w")
    assert not report.migrated and report.moved == []
    assert work.layout_file.read_text().strip() == "2"
    assert not needs_migration(work)


def test_todays_layout_is_moved_into_dot_juqueue(tmp_path, caplog):
    root = old_layout(tmp_path / "w")
    work = WorkDir(root)
    assert needs_migration(work)
    with caplog.at_level(logging.INFO, logger="juqueue.workdir"):
        report = migrate(root)
    assert report.migrated
    assert work.token_file.read_text() == "old-token\n"
    assert stat.S_IMODE(work.token_file.stat().st_mode) == 0o600
    assert work.broker_url_file.read_text().startswith("redis://")
    assert (work.broker_dir / "juqueue.aof").read_text() == "aof"
    assert (work.node_dir("local-1") / "worker.log").read_text() == "w"
    assert work.beat_log.read_text() == "b" and work.beat_schedule.read_text() == "s"
    conn = sqlite3.connect(work.db_file)
    assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 7
    conn.close()
    # Runs at W/<experiment>/<run>, checkpoints with them, even for experiments named like old files.
    assert (work.run_dir("legacy", "ok_first") / "ckpt").read_text() == "step 7"
    assert work.attempt_log("legacy", "bad", 1, "out").read_text() == "legacy/bad\n"
    assert work.attempt_log("token", "r1", 1, "out").read_text() == "token/r1\n"
    assert work.attempt_log("runs", "r2", 1, "out").read_text() == "runs/r2\n"
    # Nothing of the old layout is left at the top but the experiments.
    assert sorted(p.name for p in root.iterdir()) == [".juqueue", "legacy", "runs", "token"]
    assert sorted(p.name for p in work.state_dir.iterdir()) == sorted(
        ["beat-schedule", "beat.log", "broker", "juqueue.db", "layout", "nodes", "token"])
    assert stat.S_IMODE(work.state_dir.stat().st_mode) == 0o700
    text = caplog.text
    assert "migrating" in text and f"moved {root / 'token'} -> {work.token_file}" in text
    assert not needs_migration(work)
    # A second start finds nothing to do.
    assert not migrate(root).migrated


def test_interrupted_migration_goes_on(tmp_path):
    root = old_layout(tmp_path / "w")
    work = WorkDir(root)
    work.ensure_state_dir()
    # As if a first try stopped after the token and half the experiments.
    os.rename(root / "token", work.token_file)
    os.rename(root / "runs", work.state_dir / "runs-migrating")
    os.rename(work.state_dir / "runs-migrating" / "legacy", root / "legacy")
    assert needs_migration(work)
    report = migrate(root)
    assert report.migrated
    assert work.token_file.read_text() == "old-token\n" and work.db_file.is_file()
    assert (work.run_dir("legacy", "ok_first") / "ckpt").is_file() and work.run_dir("token", "r1").is_dir()
    assert not (work.state_dir / "runs-migrating").exists()


def test_postgresql_store_moves_only_the_files(tmp_path):
    root = old_layout(tmp_path / "w")
    (root / "juqueue.db").unlink()
    pg = tmp_path / "stand-in-for-postgres.db"  # any SQLAlchemy URL: the nodes table is read from it
    sqlite3.connect(pg).close()
    migrate(root, db_url=f"sqlite:///{pg}")
    work = WorkDir(root)
    assert not work.db_file.exists() and work.token_file.is_file() and work.run_dir("legacy", "bad").is_dir()


def test_refused_while_slurm_jobs_of_it_live(tmp_path):
    root = old_layout(tmp_path / "w", nodes=[("jureca-1", "slurm", "up", "4242"), ("jureca-0", "slurm", "gone", "4241"),
                                             ("local-1", "local", "failed", None)])
    before = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    jobs = [SimpleNamespace(job_id="4242", name="juqueue-jureca-1-tok", comment="", gone=False)]
    with pytest.raises(WorkDirMigrationError) as info:
        migrate(root, slurm_jobs=lambda: jobs)
    msg = str(info.value)
    assert "SLURM jobs of it are still alive" in msg and "jureca-1 (job 4242)" in msg and "jureca-0" not in msg
    assert "nothing was moved" in msg
    after = sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_relative_to(root / ".juqueue"))
    assert after == [p for p in before]
    # SLURM cannot be asked: refused too, saying so.
    def broken():
        raise RuntimeError("squeue: not found")
    with pytest.raises(WorkDirMigrationError, match="squeue: not found"):
        migrate(root, slurm_jobs=broken)
    # The job ended (squeue no longer lists it, or lists it finished): migrated.
    gone = [SimpleNamespace(job_id="4242", name="juqueue-jureca-1-tok", comment="", gone=True)]
    assert migrate(root, slurm_jobs=lambda: gone).migrated


def test_a_pending_slurm_node_without_job_id_is_found_by_its_token(tmp_path):
    root = old_layout(tmp_path / "w", nodes=[("jureca-2", "slurm", "pending", None)])
    jobs = [SimpleNamespace(job_id="77", name="juqueue-jureca-2-tok-jureca-2", comment="juqueue:tok-jureca-2", gone=False)]
    with pytest.raises(WorkDirMigrationError, match="jureca-2"):
        migrate(root, slurm_jobs=lambda: jobs)


def test_refused_while_a_local_worker_left_behind_runs(tmp_path):
    root = old_layout(tmp_path / "w")
    conn = sqlite3.connect(root / "juqueue.db")
    conn.execute("INSERT INTO nodes (name, cluster, backend, token, state, slots_total, pid, created_at) "
                 "VALUES ('local-9', 'local', 'local', 't', 'up', 1, 12345, 0)")
    conn.commit()
    conn.close()
    with pytest.raises(WorkDirMigrationError, match=r"local-9 \(pid 12345\)"):
        migrate(root, pid_is_worker=lambda pid, node: pid == 12345)
    assert migrate(root).migrated  # that worker gone


def test_refused_while_an_old_serve_holds_the_old_lock(tmp_path):
    root = old_layout(tmp_path / "w")
    with open(root / "juqueue.lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(WorkDirMigrationError, match="in use by its server"):
            migrate(root)
    assert (root / "token").is_file()
    assert migrate(root).migrated


def test_refused_while_the_original_juqueue_runs_on_the_work_dir(tmp_path):
    root = tmp_path / "w"
    original_run(root, "e", "r", json.dumps({"status": "finished"}))
    (root / ".lock").write_text("")
    with open(root / ".lock") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as the original's FileLock does
        with pytest.raises(WorkDirMigrationError, match="original JuQueue is running"):
            migrate(root)
    migrate(root)  # stopped: fine


def test_refused_when_an_experiment_has_no_free_place(tmp_path):
    root = old_layout(tmp_path / "w")
    (root / "legacy").mkdir()  # something of the user's at the top
    (root / "runs" / ".juqueue" / "r").mkdir(parents=True)
    with pytest.raises(WorkDirMigrationError) as info:
        migrate(root)
    assert "legacy" in str(info.value) and ".juqueue is JuQueue's own directory" in str(info.value)
    assert (root / "token").is_file() and (root / "runs" / "legacy").is_dir()  # nothing moved


def test_live_nodes_in_store_reads_states(tmp_path):
    root = old_layout(tmp_path / "w", nodes=[("a", "slurm", "up", "1"), ("b", "slurm", "failed", "2"), ("c", "local", "draining", None)])
    live = live_nodes_in_store(f"sqlite:///{LegacyWorkDir(root).db_file}")
    assert sorted((n.name, n.backend, n.state) for n in live) == [("a", "slurm", "up"), ("c", "local", "draining")]
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    assert live_nodes_in_store(f"sqlite:///{empty}") == []


def test_experiment_names_starting_with_a_dot_are_refused():
    assert unsafe_name_reason(".juqueue") is not None and "'.'" in unsafe_name_reason(".juqueue")
    assert unsafe_name_reason(".hidden") is not None
    assert unsafe_name_reason("a.b") is None


# ---------------------------------------------------------------------- the original JuQueue
def original_run(root: Path, exp: str, run: str, content: str | None) -> Path:
    d = root / exp / run
    (d / "logs").mkdir(parents=True, exist_ok=True)
    if content is not None:
        (d / "juqueue-run.json").write_text(content)
    return d


def test_original_statuses_map_and_unreadable_files_warn(tmp_path):
    root = tmp_path / "w"
    for run, status in (("done", "finished"), ("bad", "failed"), ("paused", "inactive"), ("waiting", "ready")):
        original_run(root, "sweep", run, json.dumps({"status": status, "created_at": "2023-05-01T10:00:00"}))
    original_run(root, "sweep", "torn", '{"status": "fini')
    original_run(root, "sweep", "odd", json.dumps({"status": "running"}))
    original_run(root, "sweep", "list", "[1]")
    original_run(root, "sweep", "nofile", None)
    original_run(root, "other", "x", json.dumps({"status": "finished"}))
    (root / ".juqueue" / "a").mkdir(parents=True)
    (root / ".juqueue" / "a" / "juqueue-run.json").write_text(json.dumps({"status": "finished"}))
    (root / "logs").mkdir()  # the original's own server logs
    (root / "logs" / "juqueue.log").write_text("log")
    (root / ".lock").write_text("")
    statuses, warnings = original_run_statuses(root)
    assert statuses == {"sweep@done": "completed", "sweep@bad": "failed", "sweep@paused": "held",
                        "sweep@waiting": "queued", "other@x": "completed"}
    assert len(warnings) == 3
    for run in ("torn", "odd", "list"):
        assert any(str(root / "sweep" / run / "juqueue-run.json") in w and f"sweep@{run} starts as a new run" in w
                   for w in warnings), warnings
    assert original_run_statuses(tmp_path / "missing") == ({}, [])


def test_original_status_file_without_permission_warns(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    root = tmp_path / "w"
    d = original_run(root, "e", "r", json.dumps({"status": "finished"}))
    os.chmod(d / "juqueue-run.json", 0)
    statuses, warnings = original_run_statuses(root)
    assert statuses == {} and "cannot be read" in warnings[0]


# ---------------------------------------------------------------------- serve's API options
def test_api_port_choices(tmp_path):
    opts = ServeOptions(def_dir=tmp_path, work_dir=tmp_path)
    assert api_port(ServeOptions(def_dir=tmp_path, work_dir=tmp_path, port=-1)) is None
    assert api_port(ServeOptions(def_dir=tmp_path, work_dir=tmp_path, unix_socket=tmp_path / "s")) is None
    free = free_port()
    assert api_port(ServeOptions(def_dir=tmp_path, work_dir=tmp_path, unix_socket=tmp_path / "s", port=free)) == free
    assert api_port(opts) is not None


def test_bind_unix_socket_is_private_and_replaces_a_stale_one(tmp_path):
    path = tmp_path / "api.sock"
    sock = bind_unix_socket(path)
    try:
        assert stat.S_ISSOCK(path.lstat().st_mode) and stat.S_IMODE(path.lstat().st_mode) == 0o600
        assert [p.name for p in tmp_path.iterdir()] == ["api.sock"]  # its private bind dir is gone
        with pytest.raises(ConfigError, match="in use"):
            bind_unix_socket(path)
    finally:
        sock.close()
    again = bind_unix_socket(path)  # stale: nobody listens
    again.close()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a socket"):
        bind_unix_socket(tmp_path / "file")
    with pytest.raises(ConfigError, match="too long"):
        bind_unix_socket(tmp_path / ("x" * 120))
