"""The runs list's paging and a requeue by filter, against a real server with a local cluster.

300 runs, 150 of which fail (their command tests for a file that is not there yet), plus an
other experiment's failed runs: one `requeue` with a filter (failed runs of the experiment)
requeues exactly the 150, in one call, and they run again (the file exists now) and complete;
the other experiment's failed runs stay as they were. `juqueue runs` lists all of them.
"""

from __future__ import annotations

import json

import pytest

from helpers import Server, write_defs

CLUSTER = """
local:
  type: local
  num_slots: 8
  max_jobs: 2
  idle_timeout: 5
  heartbeat_interval: 1
"""


def _experiment(name: str, n: int, marker: str, every_other: bool) -> str:
    lines = [f"experiment: {name}", "cluster: local", "runs:"]
    for i in range(n):
        cmd = ["sh", "-c", f"test -e {marker}"] if (i % 2 or not every_other) else ["true"]
        lines.append(f"  - {{id: r{i:03d}, cmd: {json.dumps(cmd)}}}")
    return "\n".join(lines) + "\n"


@pytest.mark.slow
def test_requeue_by_filter_of_150_failed_out_of_300(workspace):
    marker = workspace / "marker"
    defs = write_defs(workspace / "defs", CLUSTER, {
        "sweep.yaml": _experiment("sweep", 300, str(marker), every_other=True),
        "other.yaml": _experiment("other", 5, str(workspace / "never"), every_other=False)})
    server = Server(defs, workspace / "work").start(tick=0.5)
    try:
        runs = server.wait_for(lambda rs: rs if len(rs) == 305 and all(r["status"] in ("completed", "failed") for r in rs)
                               else None, 240, "305 runs final")
        failed = sorted(r["global_id"] for r in runs if r["experiment"] == "sweep" and r["status"] == "failed")
        assert len(failed) == 150 and all(int(g[-3:]) % 2 for g in failed)

        page = server.api("GET", "/api/runs", params={"status": ["failed", "cancelled"], "experiment": "sweep", "limit": 7})
        assert page.status_code == 200 and len(page.json()) == 7 and page.headers["X-Total-Count"] == "150"
        listed = json.loads(server.cli("runs", "--json").stdout)
        assert len(listed) == 305 and {r["global_id"] for r in listed} == {r["global_id"] for r in runs}

        marker.write_text("")
        resp = server.api("POST", "/api/runs/requeue", json={"filter": {"statuses": ["failed"], "experiment": "sweep"}})
        assert resp.status_code == 200, resp.text
        out = resp.json()
        assert sorted(out["requeued"]) == failed and out["matched"] == 150
        assert out["skipped"] == [] and out["skipped_reasons"] == {} and out["unknown"] == []

        done = server.wait_for(lambda rs: rs if all(r["status"] in ("completed", "failed") for r in rs)
                               and sum(r["status"] == "completed" for r in rs if r["experiment"] == "sweep") == 300 else None,
                               240, "the 150 requeued runs completed")
        by_id = {r["global_id"]: r for r in done}
        assert all(by_id[g]["attempt"] == 2 and by_id[g]["status"] == "completed" for g in failed)  # they ran again
        assert all(r["attempt"] == 1 for g, r in by_id.items() if r["experiment"] == "sweep" and g not in failed)
        assert all(r["status"] == "failed" and r["attempt"] == 1 for r in done if r["experiment"] == "other")

        # Nothing left to requeue in sweep: 200, matched 0; the CLI's --status on requeue.
        again = server.api("POST", "/api/runs/requeue", json={"filter": {"statuses": ["failed"], "experiment": "sweep"}}).json()
        assert again == {"requeued": [], "unknown": [], "skipped": [], "skipped_reasons": {}, "matched": 0}
        cli = server.cli("requeue", "--experiment", "sweep", "--status", "completed", "--json")
        answer = json.loads(cli.stdout)
        assert answer["requeued"] == [] and answer["matched"] == 300 and len(answer["skipped_reasons"]) == 300
        assert set(answer["skipped_reasons"].values()) == {"completed: not failed or cancelled"}
    finally:
        server.stop()
