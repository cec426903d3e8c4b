"""Reloading definitions through the API and CLI: bad files change nothing in the store."""

from __future__ import annotations

import json
import sqlite3

from helpers import Server, write_defs
from juqueue.paths import WorkDir

CLUSTERS = """
local:
  type: local
  num_slots: 2
  max_jobs: 1
  idle_timeout: 60
"""

GOOD = """
experiment: good
cluster: local
runs:
  - {id: a, cmd: ["sleep", "60"]}
  - {id: b, cmd: ["sleep", "60"]}
"""


def test_bad_definitions_are_reported_and_change_nothing(workspace):
    defs = write_defs(workspace / "defs", CLUSTERS, {"good.yaml": GOOD})
    server = Server(defs, workspace / "work").start()
    try:
        server.wait_for(lambda runs: len(runs) == 2, 30, "2 runs")
        before = {r["global_id"]: (r["defined"], r["status"]) for r in server.runs()}
        # Break the good file in several ways, one at a time: each error names the file, nothing changes.
        cases = {
            "syntax": "experiment: good\nruns: [ {id: a, cmd: [\n",
            "unknown cluster": "experiment: good\ncluster: nowhere\nruns: [{id: a, cmd: [true]}]\n",
            "duplicate id": "experiment: good\ncluster: local\nruns: [{id: a, cmd: [true]}, {id: a, cmd: [true]}]\n",
            "unsafe id": "experiment: good\ncluster: local\nruns: [{id: '../x', cmd: [true]}]\n",
            "missing cmd": "experiment: good\ncluster: local\nruns: [{id: a}]\n",
            "cycle": "experiment: good\ncluster: local\nruns: [{id: a, cmd: [true], depends_on: [b]}, {id: b, cmd: [true], depends_on: [a]}]\n",
            "unknown dependency": "experiment: good\ncluster: local\nruns: [{id: a, cmd: [true], depends_on: [zzz]}]\n",
        }
        (defs / "experiments").mkdir()
        (defs / "experiments" / "raises.py").write_text("raise RuntimeError('boom in user code')\n")
        (defs / "other.yaml").write_text("experiment: other\ncluster: local\nruns: [{id: c, cmd: [true]}]\n")
        for what, text in cases.items():
            (defs / "good.yaml").write_text(text)
            resp = server.api("POST", "/api/reload")
            assert resp.status_code == 200, resp.text
            errors = resp.json()["errors"]
            assert any("good.yaml" in e for e in errors), (what, errors)
            assert any("raises.py" in e and "boom in user code" in e for e in errors), errors
            runs = {r["global_id"]: r for r in server.runs()}
            for gid, (defined, _status) in before.items():
                assert runs[gid]["defined"] == defined, (what, gid)
            assert "other@c" in runs, "a good file beside the broken ones must still load"
        status = server.cli("status")
        assert "good.yaml" in status.stdout + status.stderr
        reload_cli = server.cli("reload", check=False)
        assert reload_cli.returncode == 1 and "good.yaml" in reload_cli.stdout + reload_cli.stderr
        # Fixed again: a run removed from its file is kept, marked as no longer defined, not run.
        (defs / "good.yaml").write_text("experiment: good\ncluster: local\nruns: [{id: a, cmd: [sleep, '60']}]\n")
        (defs / "experiments" / "raises.py").unlink()
        resp = server.api("POST", "/api/reload").json()
        assert resp["errors"] == []
        runs = {r["global_id"]: r for r in server.runs()}
        assert runs["good@b"]["defined"] is False and runs["good@a"]["defined"] is True
    finally:
        server.stop()


FIXABLE = """
experiment: fix
cluster: local
runs:
  - {id: broken, cmd: ["sh", "-c", "echo old; exit 3"]}
  - {id: long, cmd: ["sh", "-c", "echo long-old; sleep 4"]}
"""

FIXED = """
experiment: fix
cluster: local
runs:
  - {id: broken, cmd: ["sh", "-c", "echo new"]}
  - {id: long, cmd: ["sh", "-c", "echo long-new"]}
"""


def test_requeue_and_later_starts_use_the_current_definition(workspace):
    """A failed run fixed in its file and reloaded runs the new command when requeued; a run
    that was live during the reload gets the new definition from a later reload."""
    defs = write_defs(workspace / "defs", CLUSTERS, {"fix.yaml": FIXABLE})
    server = Server(defs, workspace / "work").start()
    try:
        server.wait_for(lambda runs: any(r["id"] == "broken" and r["status"] == "failed" for r in runs)
                        and any(r["id"] == "long" and r["status"] == "running" for r in runs), 60, "broken failed, long running")
        (defs / "fix.yaml").write_text(FIXED)
        assert server.api("POST", "/api/reload").json()["errors"] == []
        server.cli("requeue", "fix@broken")
        server.wait_all_final(timeout=60)
        work = workspace / "work"
        out = WorkDir(work).attempt_log("fix", "broken", 2, "out").read_text()
        assert out.strip() == "new", out
        assert server.run("fix@broken")["status"] == "completed"
        # `long` was live at the reload and kept its definition; the next reload takes the new one.
        assert WorkDir(work).attempt_log("fix", "long", 1, "out").read_text().strip() == "long-old"
        assert server.api("POST", "/api/reload").json()["errors"] == []
        conn = sqlite3.connect(WorkDir(work).db_file)
        try:
            (spec_json,) = conn.execute("SELECT spec_json FROM runs WHERE global_id = 'fix@long'").fetchone()
        finally:
            conn.close()
        assert "long-new" in " ".join(json.loads(spec_json)["cmd"]), spec_json
    finally:
        server.stop()
