"""Checkpoints known to JuQueue on the test SLURM: three jobs each left with one long run; two
runs checkpoint (touching $JUQUEUE_CHECKPOINT_FILE) at different points, one saves its state on
SIGTERM (`checkpoint_on_term`). The workers inside the jobs report the checkpoint files' mtimes;
consolidation moves the run saving on SIGTERM first, then the fresher checkpoint, and keeps the
stalest; each resumed run redid at most its progress since its last checkpoint, the one saving
on SIGTERM nothing. Real serve, embedded broker, sbatch/squeue/scancel.

scripts/setup-test-slurm.sh starts the SLURM; without `sbatch` the test is skipped loudly (a
failure with CI=true: require_slurm)."""

from __future__ import annotations

import time

import pytest

from checkpoint_program import PROGRAM, check_moves, experiment, moved_and_running
from helpers import Server, write_defs
from juqueue.paths import WorkDir
from slurm_helpers import require_slurm, slurm_jobs  # noqa: F401  (fixture)
from support.slurm import slurm_cluster

pytestmark = [pytest.mark.slurm, pytest.mark.integration]

# long run -> (seconds after its start at which attempt 1 checkpoints, saves on SIGTERM)
LONG = {"early": (0.5, False), "late": (1.5, False), "onterm": (0.0, True)}
SHORT_S = 8  # long enough that all three jobs are up before any short run ends


@pytest.fixture(autouse=True)
def need_slurm() -> None:
    require_slurm()


@pytest.mark.slow(100)
@pytest.mark.timeout(300)
def test_consolidation_on_slurm_moves_the_freshest_checkpoints(workspace, slurm_jobs):
    cluster = slurm_cluster("c", job_name=slurm_jobs, num_slots=3, max_jobs=3, idle_timeout=60, heartbeat_interval=0.5,
                            heartbeat_timeout=20, poll_interval=2, grace_period=4, consolidation="aggressive",
                            consolidate_after=5)
    program = workspace / "program.py"
    program.write_text(PROGRAM)
    defs = write_defs(workspace / "defs", cluster, {"ck.yaml": experiment(program, "c", LONG, 2, SHORT_S)})
    work = WorkDir(workspace / "work")
    server = Server(defs, workspace / "work").start()
    try:
        server.wait_for(lambda runs: moved_and_running(runs, LONG, 2), timeout=200,
                        what="two long runs moved and running again")
        time.sleep(1.0)  # a little progress on attempt 2
        (work.experiment_dir("ck") / "finish").write_text("")
        runs = {r["id"]: r for r in server.wait_all_final(timeout=60)}
        assert {r["status"] for r in runs.values()} == {"completed"}, runs
        print("moved run -> (checkpoint at, progress redone):", check_moves(server, work, LONG))
    finally:
        server.stop()
