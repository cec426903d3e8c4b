"""A checkpointing run for the checkpoint tests (local and SLURM), and what they check of it:
the experiment's file, each run's own record of its attempts, and the moves consolidation made."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from helpers import Server
from juqueue.paths import WorkDir

# Progress in 0.1 s steps; state.json in its run dir is its checkpoint. argv: the seconds after
# its start at which attempt 1 checkpoints (0: never; wall time, so a loaded machine does not
# push it past consolidation's first decision), and whether it saves on SIGTERM. Every start,
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
t0 = time.time()
saved = False
while not os.path.exists(finish):
    time.sleep(0.1)
    progress = round(progress + 0.1, 1)
    if attempt == 1 and at and not saved and time.time() - t0 >= at:
        save()
        saved = True
record("end")
'''

def experiment(program: Path, cluster: str, long: dict[str, tuple[float, bool]], shorts: int, short_s: float) -> str:
    """`long`: run -> (the seconds after its start at which its attempt 1 checkpoints, whether
    it saves on SIGTERM). In queue order each long run is followed by `shorts` short ones, so each node that
    comes up takes one long run and its short neighbours."""
    lines = ["experiment: ck", f"cluster: {cluster}", "runs:"]
    for name, (at, on_term) in long.items():
        extra = ", checkpoint_on_term: true" if on_term else ""
        lines.append(f"  - {{id: {name}, cmd: [{sys.executable!r}, {str(program)!r}, '{at}', '{int(on_term)}']{extra}}}")
        lines += [f"  - {{id: {name}_s{k}, cmd: [sleep, '{short_s:g}']}}" for k in range(shorts)]
    return "\n".join(lines) + "\n"


def records(work: WorkDir, run: str) -> list[dict]:
    path = work.run_dir("ck", run) / "attempts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]




def moved_and_running(runs: list[dict], long: dict[str, tuple[float, bool]], count: int) -> bool:
    by = {r["id"]: r for r in runs}
    return sum(1 for name in long if by[name]["attempt"] == 2 and by[name]["status"] == "running") == count


def check_moves(server: Server, work: WorkDir, long: dict[str, tuple[float, bool]]) -> dict:
    """Every long run checkpointed once in attempt 1 and its worker's report is on the attempt;
    consolidation moved the one saving on SIGTERM first, then the freshest checkpoints, and kept
    the stalest (every checkpoint came before the first move: the costs were known); each moved run resumed from its own checkpoint and redid at most its progress
    since it (nothing, saving on SIGTERM). Returns run -> (checkpoint time, redone progress)."""
    details = {name: server.run(f"ck@{name}") for name in long}
    moved = sorted((name for name, d in details.items() if len(d["attempts"]) == 2),
                   key=lambda name: next(e["ts"] for e in details[name]["events"] if e["kind"] == "moved"))
    (kept,) = [name for name in long if name not in moved]
    checkpoints = {}
    for name, d in details.items():
        first = d["attempts"][0]
        ckpt = [r for r in records(work, name) if r["attempt"] == 1 and r["event"] == "checkpoint"]
        assert len(ckpt) == 1, (name, ckpt)
        assert first["last_checkpoint_at"] == pytest.approx(ckpt[0]["t"], abs=0.01), (name, first)
        checkpoints[name] = ckpt[0]["t"]
    on_term = [n for n, (_at, term) in long.items() if term]
    first_move = min(e["ts"] for d in details.values() for e in d["events"] if e["kind"] == "moved")
    assert max(t for n, t in checkpoints.items() if n not in on_term) < first_move, (checkpoints, first_move)
    periodic = sorted((n for n in long if n not in on_term), key=checkpoints.__getitem__, reverse=True)
    assert moved == on_term + periodic[:-1] and kept == periodic[-1], (moved, kept, checkpoints)
    assert len({d["attempts"][-1]["node"] for d in details.values()}) == 1  # all on the kept run's node
    out = {}
    for name in moved:
        recs = records(work, name)
        end1 = next(r for r in recs if r["attempt"] == 1 and r["event"] == "end")
        start2 = next(r for r in recs if r["attempt"] == 2 and r["event"] == "start")
        last = max((r for r in recs if r["attempt"] == 1 and r["event"] == "checkpoint"), key=lambda r: r["t"])
        redone = round(end1["progress"] - start2["progress"], 1)
        assert start2["progress"] == last["progress"], (name, recs)  # resumed from its own checkpoint
        assert 0 <= redone <= round(end1["progress"] - last["progress"], 1), (name, recs)
        assert redone <= end1["t"] - last["t"] + 0.2, (name, recs)  # at most the time since it
        if name in on_term:
            assert redone == 0, recs  # saved on SIGTERM: nothing to redo
        event = next(e for e in details[name]["events"] if e["kind"] == "moved")
        assert "expects to lose" in event["detail"], event
        out[name] = (checkpoints[name], redone)
    return out
