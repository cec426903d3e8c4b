"""Checkpoints known to JuQueue, on a real `local` cluster (real serve, broker, workers): four
nodes each left with one long run; each run checkpoints (touching $JUQUEUE_CHECKPOINT_FILE
through `DefUtils.checkpointed()`) at a different point, one saves its state on SIGTERM
(`checkpoint_on_term`). The worker reports the checkpoint files' mtimes, the controller stores
them on the attempts, and consolidation moves the runs that lose least: the one saving on
SIGTERM first, then the freshest checkpoints; the stalest stays. Each resumed run redid at most
its progress since its last checkpoint; the one saving on SIGTERM redid nothing."""

from __future__ import annotations

import time

import pytest

from checkpoint_program import PROGRAM, check_moves, experiment, moved_and_running
from helpers import Server, write_defs
from juqueue.paths import WorkDir

pytestmark = pytest.mark.integration

# long run -> (seconds after its start at which attempt 1 checkpoints, saves on SIGTERM)
LONG = {"early": (0.5, False), "middle": (1.0, False), "late": (1.5, False), "onterm": (0.0, True)}

CLUSTER = """
local:
  type: local
  num_slots: 4
  max_jobs: 4
  idle_timeout: 60
  grace_period: 2
  heartbeat_interval: 0.5
  heartbeat_timeout: 20
  consolidation: aggressive
  consolidate_after: 4
"""


@pytest.mark.slow(60)
def test_consolidation_moves_the_freshest_checkpoints_and_resumed_runs_redo_little(workspace):
    program = workspace / "program.py"
    program.write_text(PROGRAM)
    defs = write_defs(workspace / "defs", CLUSTER, {"ck.yaml": experiment(program, "local", LONG, 3, 4)})
    work = WorkDir(workspace / "work")
    server = Server(defs, workspace / "work").start(tick=0.5)
    try:
        server.wait_for(lambda runs: moved_and_running(runs, LONG, 3), timeout=150,
                        what="three long runs moved and running again")
        time.sleep(1.0)  # a little progress on attempt 2
        (work.experiment_dir("ck") / "finish").write_text("")
        runs = {r["id"]: r for r in server.wait_all_final(timeout=60)}
        assert {r["status"] for r in runs.values()} == {"completed"}, runs
        print("moved run -> (checkpoint at, progress redone):", check_moves(server, work, LONG))
    finally:
        server.stop()
