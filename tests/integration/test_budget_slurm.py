"""Node-hour budgets on the test SLURM: a cap that a new job would pass stops submission (no
sbatch: nothing in squeue), waiting runs and status say why; a higher cap (edit + reload) lets
submission go on."""

from __future__ import annotations

import time

import pytest

from helpers import Server, write_defs
from slurm_helpers import require_slurm, slurm_jobs  # noqa: F401  (fixture)
from support.slurm import slurm_cluster, squeue
from support.waiting import wait_until

pytestmark = [pytest.mark.slurm, pytest.mark.integration]

RUNS = "experiment: e\ncluster: hpc\nruns: [{id: r, cmd: [sleep, '2']}]\n"


def test_budget_cap_stops_sbatch_until_raised(workspace, slurm_jobs):
    require_slurm()
    # Each job may bill its 10-minute wall time: 0.1 node-hours (6 minutes) cannot hold one.
    defs = write_defs(workspace / "defs", slurm_cluster("hpc", job_name=slurm_jobs, budget_node_hours=0.1), {"e.yaml": RUNS})
    server = Server(defs, workspace / "work").start(tick=0.5)
    try:
        reason = wait_until("the budget's reason in status", lambda: (server.api("GET", "/api/status").json()["clusters"][0]
                                                                     .get("budget") or {}).get("reason"), 30, 0.5)
        assert reason.startswith("node-hour budget reached (spent 0.00 of 0.1)"), reason
        time.sleep(5)  # several ticks: still nothing submitted
        assert squeue(slurm_jobs) == [], "a job was submitted past the budget"
        run = server.run("e@r")
        assert run["status"] == "queued" and run["reason"].startswith("node-hour budget reached"), run
        assert "node-hour budget reached" in server.cli("status").stdout
        (defs / "clusters.yaml").write_text(slurm_cluster("hpc", job_name=slurm_jobs, budget_node_hours=1.0))
        assert server.api("POST", "/api/reload").json()["errors"] == []
        runs = server.wait_all_final(timeout=120)
        assert runs[0]["status"] == "completed"
        budget = server.api("GET", "/api/status").json()["clusters"][0]["budget"]
        assert budget["budget_node_hours"] == 1.0 and budget["spent_node_hours"] > 0
    finally:
        server.stop()
