"""Node-hour accounting on the test SLURM: a job bills from SLURM's own start time (squeue %S),
and, with no accounting on this SLURM, its end is when JuQueue saw it gone, marked estimated."""

from __future__ import annotations

import subprocess
import time

import pytest

from helpers import Server, write_defs
from slurm_helpers import nodes, require_slurm, slurm_jobs  # noqa: F401  (fixture)
from support.slurm import slurm_cluster
from support.waiting import wait_until

pytestmark = [pytest.mark.slurm, pytest.mark.integration]


def _squeue_start(prefix: str) -> dict[str, float]:
    proc = subprocess.run(["squeue", "--me", "-h", "-t", "all", "-o", "%i %j %T %S"], capture_output=True, text=True, timeout=30)
    out = {}
    for line in proc.stdout.splitlines():
        job_id, name, state, start = line.split()
        if name.startswith(prefix) and state == "RUNNING":
            out[job_id] = time.mktime(time.strptime(start, "%Y-%m-%dT%H:%M:%S"))
    return out


@pytest.mark.slow(60)
def test_slurm_job_bills_from_its_slurm_start_and_its_end_is_estimated(workspace, slurm_jobs):
    require_slurm()
    defs = write_defs(workspace / "defs", slurm_cluster("hpc", job_name=slurm_jobs, idle_timeout=2),
                      {"e.yaml": "experiment: e\ncluster: hpc\nruns: [{id: r, cmd: [sleep, '6']}]\n"})
    server = Server(defs, workspace / "work").start(tick=0.5)
    try:
        starts = wait_until("the job running in squeue", lambda: _squeue_start(slurm_jobs), 120, 0.5)
        server.wait_all_final(timeout=120)
        ended = wait_until("the node ended and billed", lambda: [n for n in nodes(server) if not n["live"] and n["billed_until"]],
                           120, 1)
        # one run, one job: a second ended node means the run was interrupted and rerun elsewhere
        assert len(ended) == 1, f"expected one ended node, got {ended}\nserve log:\n{server.log.read_text()[-4000:]}"
        (node,) = ended
        assert node["billed_from"] == starts[node["job_id"]], (node, starts)
        assert node["billed_estimated"] is True
        assert node["billed_until"] > node["billed_from"]
        usage = server.api("GET", "/api/usage").json()["clusters"]["hpc"]
        assert usage["estimated"] is True and usage["node_hours"] > 0
    finally:
        server.stop()
