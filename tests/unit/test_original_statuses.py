"""The original JuQueue's run statuses read from its work dir and mapped to ours."""

from __future__ import annotations

import json
import os

import pytest

from juqueue.original_statuses import original_run_statuses
from workdir_fixtures import original_run


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
