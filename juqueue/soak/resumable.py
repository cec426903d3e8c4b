"""The soak's run: resumable work that journals every start, tick, stop and end.

`python -m juqueue.soak.resumable --work S --exit CODE --journal DIR` does S seconds of "work" in
ticks, keeps its progress in `progress.json` in its run directory (its checkpoint, written every
second and on SIGTERM), touches `$JUQUEUE_CHECKPOINT_FILE` when it checkpoints (when JuQueue sets
it), and exits with CODE once the work is done. Every event goes to `DIR/<experiment>@<run>.jsonl`
(one JSON line each: `ev`, `t`, `pid`, `attempt`, `progress`), outside the work dir, so a full work
dir never loses the evidence the checker reads. A checkpoint that cannot be written (a full disk)
is journalled and the run goes on: a restart then redoes the work since the last good one.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

TICK_S = 0.25
CHECKPOINT_EVERY_S = 1.0
STATE_FILE = "progress.json"


class Journal:
    """Appends one JSON line per event; O_APPEND keeps lines whole across attempts."""

    def __init__(self, path: Path, attempt: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.attempt = attempt

    def write(self, ev: str, progress: float, **extra: object) -> None:
        line = json.dumps({"ev": ev, "t": time.time(), "pid": os.getpid(), "attempt": self.attempt,
                           "progress": round(progress, 3), **extra})
        os.write(self._fd, (line + "\n").encode())


def load_progress(run_dir: Path) -> float:
    try:
        return float(json.loads((run_dir / STATE_FILE).read_text())["progress"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def save_progress(run_dir: Path, progress: float) -> str | None:
    """Write the checkpoint atomically; the error's text when the disk refused it."""
    tmp = run_dir / (STATE_FILE + ".tmp")
    try:
        tmp.write_text(json.dumps({"progress": progress}))
        os.replace(tmp, run_dir / STATE_FILE)
        marker = os.environ.get("JUQUEUE_CHECKPOINT_FILE")
        if marker:
            Path(marker).touch()
        return None
    except OSError as exc:
        return str(exc)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--work", type=float, required=True, help="seconds of work in all")
    ap.add_argument("--exit", type=int, default=0, help="exit code once the work is done")
    ap.add_argument("--journal", type=Path, required=True, help="directory of the journals")
    args = ap.parse_args(argv)
    run_dir = Path(os.environ.get("JUQUEUE_RUN_DIR", "."))
    gid = os.environ.get("JUQUEUE_RUN_ID", f"unknown@{os.getpid()}")
    journal = Journal(args.journal / f"{gid}.jsonl", int(os.environ.get("JUQUEUE_ATTEMPT", "0")))
    progress = load_progress(run_dir)
    journal.write("start", progress, node=os.environ.get("JUQUEUE_NODE"))
    stopping = False

    def on_term(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    last_checkpoint = time.monotonic()
    while progress < args.work and not stopping:
        time.sleep(TICK_S)
        progress += TICK_S
        if time.monotonic() - last_checkpoint >= CHECKPOINT_EVERY_S:
            last_checkpoint = time.monotonic()
            error = save_progress(run_dir, progress)
            journal.write("tick", progress, **({"checkpoint_error": error} if error else {}))
    if stopping:
        error = save_progress(run_dir, progress)
        journal.write("stop", progress, **({"checkpoint_error": error} if error else {}))
        return 143
    save_progress(run_dir, progress)
    journal.write("end", progress, code=args.exit)
    return args.exit


if __name__ == "__main__":
    sys.exit(main())
