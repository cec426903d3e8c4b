"""The embedded broker kept by `juqueue stop` for a live SLURM job ends once that job is gone:
its watcher sees the job leave squeue and, after the grace (`--broker-grace`), shuts it down."""

from __future__ import annotations

import json
import subprocess

import pytest

from helpers import Server, write_defs
from slurm_helpers import require_slurm, slurm_jobs  # noqa: F401  (fixture)
from support.processes import pid_alive
from support.slurm import live_jobs, slurm_cluster
from support.waiting import wait_until
from juqueue.broker.lifetime import read_ledger
from juqueue.paths import WorkDir, read_json

pytestmark = [pytest.mark.slurm, pytest.mark.integration]


@pytest.fixture(autouse=True)
def need_slurm() -> None:
    require_slurm()


@pytest.mark.slow(60)
def test_broker_kept_for_a_live_job_ends_after_the_job(workspace, slurm_jobs):
    defs = write_defs(workspace / "defs", slurm_cluster("c", job_name=slurm_jobs, idle_timeout=300),
                      {"long.yaml": "experiment: long\ncluster: c\nid: sleeper\ncmd: [sleep, '600']\n"})
    work = workspace / "work"
    grace = 3
    server = Server(defs, work, "--broker-grace", str(grace)).start()
    try:
        server.wait_for(lambda runs: runs and runs[0]["status"] == "running", 120, "the run to run in its job")
        jobs = [j[0] for j in live_jobs(slurm_jobs)]
        assert len(jobs) == 1, jobs
        stopped = server.cli("stop")  # without --cancel-jobs: the job and the broker stay
        assert "stopping" in stopped.stdout
        server.proc.wait(60)
    finally:
        server.kill()
    broker_dir = WorkDir(work).broker_dir
    broker = int(read_json(broker_dir / "broker.json")["pid"])
    ledger = read_ledger(WorkDir(work))
    assert ledger.server is None and [n.job_id for n in ledger.nodes] == jobs, ledger
    watcher_log = broker_dir / "watcher.log"
    wait_until("the watcher to see the job", lambda: watcher_log.exists() and "in use by SLURM job" in watcher_log.read_text(), 30,
               detail=lambda: watcher_log.read_text() if watcher_log.exists() else "(no watcher log)")
    assert pid_alive(broker), "the broker must stay up while the job lives"
    assert live_jobs(slurm_jobs), "the job must outlive `stop` without --cancel-jobs"

    subprocess.run(["scancel", jobs[0]], check=True, timeout=30)
    wait_until("the broker to end after its job", lambda: not pid_alive(broker), 60,
               detail=lambda: watcher_log.read_text()[-3000:] + "\nsqueue: " + json.dumps(live_jobs(slurm_jobs)))
    assert "shutting the broker down" in watcher_log.read_text()
