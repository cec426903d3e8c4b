"""Checkpoints known to JuQueue, on a real `local` cluster (real serve, broker, workers): four
nodes each left with one long run; each run checkpoints (touching $JUQUEUE_CHECKPOINT_FILE
through `DefUtils.checkpointed()`) at a different point, one saves its state on SIGTERM
(`checkpoint_on_term`). The worker reports the checkpoint files' mtimes, the controller stores
them on the attempts, and consolidation moves the runs that lose least: the one saving on
SIGTERM first, then the freshest checkpoints; the stalest stays. Each resumed run redid at most
its progress since its last checkpoint; the one saving on SIGTERM redid nothing."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from helpers import Server, write_defs
from juqueue.paths import WorkDir

pytestmark = pytest.mark.integration

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
  consolidate_after: 3
"""

# Progress in 0.1 s steps; state.json in its run dir is its checkpoint. argv: the progress at
# which attempt 1 checkpoints (0: never), and whether it saves on SIGTERM. Every start,
# checkpoint and end goes to attempts.jsonl with its progress and time.
PROGRAM = r'''
import json, os, signal, sys, time
from juqueue import DefUtils
run_dir, attempt = os.environ["JUQUEUE_RUN_DIR"], int(os.environ["JUQUEUE_ATTEMPT"])
at, on_term = float(sys.argv[1]), sys.argv[2] == "1"
state, finish = os.path.join(run_dir, "state.json"), os.path.join(os.path.dirname(run_dir), "finish")
progress = json.load(open(state))["progress"] if os.path.exists(state) else 0.0
log = open(os.path.join(run_dir, "attempts.jsonl"), "a")
def record(event, t=None):
    log.write(json.dumps({"attempt": attempt, "event": event, "progress": progress, "t": t or time.time()}) + "\n")
    log.flush()
def save():
    with open(state + ".tmp", "w") as f:
        json.dump({"progress": progress}, f)
    os.replace(state + ".tmp", state)
    assert DefUtils.checkpointed()
    record("checkpoint", os.stat(os.environ["JUQUEUE_CHECKPOINT_FILE"]).st_mtime)
def term(*_):
    if on_term:
        save()
    record("end")
    sys.exit(0)
signal.signal(signal.SIGTERM, term)
record("start")
saved = False
while not os.path.exists(finish):
    time.sleep(0.1)
    progress = round(progress + 0.1, 1)
    if attempt == 1 and at and not saved and progress >= at:
        save()
        saved = True
record("end")
'''

# long run -> (checkpoint at progress, saves on SIGTERM)
LONG = {"ckpt1": (1.0, False), "ckpt3": (3.0, False), "ckpt5": (5.0, False), "onterm": (0.0, True)}


def _experiment(program: Path) -> str:
    lines = ["experiment: ck", "cluster: local", "runs:"]
    for name, (at, on_term) in LONG.items():  # each node that comes up takes one long run and three short ones
        extra = ", checkpoint_on_term: true" if on_term else ""
        lines.append(f"  - {{id: {name}, cmd: [{sys.executable!r}, {str(program)!r}, '{at}', '{int(on_term)}']{extra}}}")
        lines += [f"  - {{id: {name}_s{k}, cmd: [sleep, '4']}}" for k in range(3)]
    return "\n".join(lines) + "\n"


def _records(work: WorkDir, run: str) -> list[dict]:
    path = work.run_dir("ck", run) / "attempts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.slow(60)
def test_consolidation_moves_the_freshest_checkpoints_and_resumed_runs_redo_little(workspace):
    program = workspace / "program.py"
    program.write_text(PROGRAM)
    defs = write_defs(workspace / "defs", CLUSTER, {"ck.yaml": _experiment(program)})
    work = WorkDir(workspace / "work")
    server = Server(defs, workspace / "work").start(tick=0.5)
    try:
        def moved_all(runs: list[dict]) -> bool:
            by = {r["id"]: r for r in runs}
            return sum(1 for name in LONG if by[name]["attempt"] == 2 and by[name]["status"] == "running") == 3
        server.wait_for(moved_all, timeout=150, what="three long runs moved and running again")
        time.sleep(1.0)  # a little progress on attempt 2
        (work.experiment_dir("ck") / "finish").write_text("")
        runs = {r["id"]: r for r in server.wait_all_final(timeout=60)}
        assert {r["status"] for r in runs.values()} == {"completed"}, runs

        details = {name: server.run(f"ck@{name}") for name in LONG}
        moved = sorted((name for name, d in details.items() if len(d["attempts"]) == 2),
                       key=lambda name: next(e["ts"] for e in details[name]["events"] if e["kind"] == "moved"))
        (kept,) = [name for name in LONG if name not in moved]
        # The worker's reports, stored on each first attempt: the checkpoint files' mtimes.
        checkpoints = {}
        for name, d in details.items():
            first = d["attempts"][0]
            ckpt = [r for r in _records(work, name) if r["attempt"] == 1 and r["event"] == "checkpoint"]
            assert len(ckpt) == 1, (name, ckpt)
            assert first["last_checkpoint_at"] == pytest.approx(ckpt[0]["t"], abs=0.01), (name, first)
            checkpoints[name] = ckpt[0]["t"]
        # Who moved: the run saving on SIGTERM first (it loses nothing), then the freshest
        # checkpoints; the stalest checkpoint stays where it is.
        assert moved[0] == "onterm", moved
        periodic = sorted((n for n in LONG if n != "onterm"), key=checkpoints.__getitem__, reverse=True)
        assert moved[1:] == periodic[:2] and kept == periodic[2], (moved, kept, checkpoints)
        assert len({d["attempts"][-1]["node"] for d in details.values()}) == 1  # all on the kept run's node

        for name in moved:
            recs = _records(work, name)
            end1 = next(r for r in recs if r["attempt"] == 1 and r["event"] == "end")
            start2 = next(r for r in recs if r["attempt"] == 2 and r["event"] == "start")
            last_ckpt = max((r for r in recs if r["attempt"] == 1 and r["event"] == "checkpoint"), key=lambda r: r["t"])
            redone = round(end1["progress"] - start2["progress"], 1)
            assert start2["progress"] == last_ckpt["progress"], (name, recs)  # resumed from its own checkpoint
            assert 0 <= redone <= round(end1["progress"] - last_ckpt["progress"], 1), (name, recs)
            assert redone * 1.0 <= end1["t"] - last_ckpt["t"] + 0.2, (name, recs)  # at most the time since it
            if name == "onterm":
                assert redone == 0, recs  # saved on SIGTERM: nothing to redo
            moved_event = next(e for e in details[name]["events"] if e["kind"] == "moved")
            assert "expects to lose" in moved_event["detail"], moved_event
    finally:
        server.stop()
