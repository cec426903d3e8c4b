"""The migration refused before anything moves: live SLURM jobs, local workers left behind, an old
serve holding the old lock, the original JuQueue running, an experiment with no free place."""

from __future__ import annotations

import fcntl
import json
import sqlite3
from types import SimpleNamespace

import pytest

from juqueue.errors import WorkDirMigrationError
from workdir_fixtures import migrate, old_layout, original_run


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
