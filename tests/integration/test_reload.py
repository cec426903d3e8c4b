"""Reloading definitions through the API and CLI: bad files change nothing in the store."""

from __future__ import annotations

from helpers import Server, write_defs

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
