"""The SLURM gate against a real SLURM (scripts/setup-test-slurm.sh starts one as root).

Skipped loudly where `sbatch` is missing; with CI=true a missing sbatch is a failure, so
SLURM tests never pass silently in CI.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from juqueue.backends import slurm_commands as sc
from juqueue.backends.slurm_parse import SlurmJob
from juqueue.backends.slurm_script import job_comment_for, job_name_for, render_job_script
from juqueue.definitions.models import ClusterSpec
from juqueue.paths import WorkDir
from slurm_helpers import require_slurm
from support.waiting import wait_until

pytestmark = [pytest.mark.slurm, pytest.mark.integration]


@pytest.fixture(autouse=True)
def need_slurm() -> None:
    require_slurm()


@pytest.fixture
def prefix() -> str:
    return f"jqt{uuid.uuid4().hex[:8]}"


@pytest.fixture
def cleanup() -> Iterator[list[str]]:
    ids: list[str] = []
    yield ids
    for job_id in ids:
        try:
            sc.cancel_job(job_id)
        except sc.SlurmCommandError:
            pass


def find(prefix: str, job_id: str) -> SlurmJob | None:
    return next((j for j in sc.list_jobs(prefix) if j.job_id == job_id), None)


def test_slurm_available() -> None:
    assert sc.slurm_available()


def test_submit_list_cancel(tmp_path: Path, prefix: str, cleanup: list[str]) -> None:
    name, comment = f"{prefix}-n1-tok", "juqueue:tok"
    script = "#!/bin/bash\n#SBATCH --time=5\necho started\nsleep 300\n"
    job_id = sc.submit_job(script, job_name=name, comment=comment, workdir=tmp_path, output=tmp_path / "job.log")
    cleanup.append(job_id)
    assert job_id.isdigit()

    job = wait_until("the job in squeue", lambda: find(prefix, job_id), 60)
    assert isinstance(job, SlurmJob)
    assert (job.name, job.comment) == (name, comment)
    assert job.time_limit_s == 300
    assert job.state in ("PENDING", "CONFIGURING", "RUNNING")
    wait_until("RUNNING", lambda: (j := find(prefix, job_id)) is not None and j.state == "RUNNING", 60)
    wait_until("the job's output", lambda: "started" in (tmp_path / "job.log").read_text()
               if (tmp_path / "job.log").exists() else False, 60)
    assert sc.list_jobs(prefix + "-other") == []

    sc.cancel_job(job_id)
    wait_until("the job gone", lambda: (j := find(prefix, job_id)) is None or j.gone, 60)
    sc.cancel_job(job_id)  # cancelling a job that has ended is not an error
    accounted = sc.job_accounting([job_id])  # {} on the test SLURM (no accounting storage)
    assert accounted == {} or accounted[job_id].gone


def test_job_accounting_without_accounting_storage_is_empty() -> None:
    # the test SLURM runs with AccountingStorageType=accounting_storage/none
    assert sc.job_accounting([]) == {}
    result = sc.job_accounting(["1"])
    assert isinstance(result, dict)


def test_bad_partition_raises_quoting_slurm(tmp_path: Path, prefix: str) -> None:
    script = "#!/bin/bash\n#SBATCH --partition=no_such_partition_jq\ntrue\n"
    with pytest.raises(sc.SlurmCommandError) as info:
        sc.submit_job(script, job_name=f"{prefix}-bad", comment="juqueue:bad", workdir=tmp_path,
                      output=tmp_path / "bad.log")
    err = info.value
    assert err.command[0] == "sbatch" and err.exit_code not in (0, None)
    assert "invalid partition" in err.stderr.lower()
    assert err.stderr.strip() in str(err)  # SLURM's own words, verbatim
    assert sc.list_jobs(prefix) == []


def test_job_script_traps_under_slurm(tmp_path: Path, prefix: str, cleanup: list[str]) -> None:
    """The rendered script under sbatch: USR1 to the batch shell drains the node without
    reaching the worker; scancel's TERM reaches the worker; no caller env leaks in."""
    stub = tmp_path / "fake-python"
    record = tmp_path / "record"
    stub.write_text(
        "#!/bin/bash\n"
        f"env > {record}.env\n"
        f"echo \"args: $*\" > {record}.args\n"
        f"trap 'echo usr1 >> {record}.sigs' USR1\n"
        f"trap 'echo term >> {record}.sigs; exit 0' TERM\n"
        "while :; do sleep 0.2; done\n"
    )
    stub.chmod(0o755)
    cluster = ClusterSpec(name="tc", type="slurm", python=str(stub), job_name=prefix, time="10",
                          env={"JQ_TEST_VAR": "a b"}, signal_lead=180)
    node, token = "tc-1", uuid.uuid4().hex[:12]
    log = WorkDir(tmp_path).node_dir(node) / "job.log"
    log.parent.mkdir(parents=True)
    script = render_job_script(cluster, node=node, token=token, work_dir=tmp_path, log_path=log)
    os.environ["JQ_CALLER_SECRET"] = "must-not-leak"
    try:
        job_id = sc.submit_job(script, job_name=job_name_for(cluster, node, token),
                               comment=job_comment_for(token), workdir=tmp_path, output=log)
    finally:
        del os.environ["JQ_CALLER_SECRET"]
    cleanup.append(job_id)
    wait_until("the worker stub to start", lambda: Path(f"{record}.args").exists(), 60)
    job = find(prefix, job_id)
    assert job is not None and job.comment == f"juqueue:{token}" and job.name == f"{prefix}-{node}-{token}"

    env = Path(f"{record}.env").read_text()
    assert "JQ_CALLER_SECRET" not in env
    assert "JQ_TEST_VAR=a b" in env and f"JUQUEUE_NODE_TOKEN={token}" in env
    assert Path(f"{record}.args").read_text().split() == [
        "args:", "-m", "juqueue.workers.node", "--work-dir", str(tmp_path), "--node", node, "--cluster", "tc"]

    sc.cancel_job(job_id, "USR1")
    drain = WorkDir(tmp_path).node_dir(node) / "drain"
    wait_until("the drain file", drain.exists, 60)
    time.sleep(1.0)
    assert not Path(f"{record}.sigs").exists(), "USR1 reached the worker"
    assert (j := find(prefix, job_id)) is not None and j.state == "RUNNING"

    sc.cancel_job(job_id)
    wait_until("TERM at the worker", lambda: Path(f"{record}.sigs").exists(), 60)
    assert Path(f"{record}.sigs").read_text().split()[0] == "term"
    wait_until("the job gone", lambda: (j := find(prefix, job_id)) is None or j.gone, 60)
    assert "USR1 (wall time near)" in log.read_text()
