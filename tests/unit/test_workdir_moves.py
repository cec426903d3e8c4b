"""A work dir of the previous layout moved into today's by `serve`: every move, resumed when cut short."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat

from juqueue.definitions.validation import unsafe_name_reason
from juqueue.paths import WorkDir
from juqueue.workdir import needs_migration
from workdir_fixtures import migrate, old_layout


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


def test_experiment_names_starting_with_a_dot_are_refused():
    assert unsafe_name_reason(".juqueue") is not None and "'.'" in unsafe_name_reason(".juqueue")
    assert unsafe_name_reason(".hidden") is not None
    assert unsafe_name_reason("a.b") is None
