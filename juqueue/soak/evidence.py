"""What a finished soak left behind, read into plain data for the checker.

A soak directory holds `soak.json` (seed, length, the work dir the store is in, each run's exit
code as its command decides it), `journals/` (each run's own account of its attempts), `verbs.jsonl`
(cancel/requeue/hold/release the server acted on), `feed.json` (what the live-feed client saw),
`leftovers.json` (processes, jobs and the broker still alive after `stop --cancel-jobs`).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from juqueue.paths import WorkDir


@dataclass
class AttemptJournal:
    """One attempt as the run itself journalled it."""

    number: int
    first_t: float
    last_t: float
    starts: int = 0
    end_code: int | None = None   # the exit code of an `end` (the work was done)
    end_t: float | None = None
    stopped: bool = False         # it saved its state on SIGTERM


@dataclass
class SoakEvidence:
    meta: dict
    runs: dict[str, dict]                     # global id -> the store's run row
    attempts: dict[str, list[dict]]           # global id -> the store's attempt rows, by number
    journals: dict[str, list[AttemptJournal]]  # global id -> attempts in the order they started
    start_order: dict[str, list[int]]         # global id -> attempt numbers of every `start`, in time order
    verbs: list[dict]
    feed: dict
    leftovers: dict
    integrity: str = "ok"
    bad_lines: list[str] = field(default_factory=list)


def read_journals(journal_dir: Path) -> tuple[dict[str, list[AttemptJournal]], dict[str, list[int]], list[str]]:
    journals: dict[str, list[AttemptJournal]] = {}
    order: dict[str, list[int]] = {}
    bad: list[str] = []
    for path in sorted(journal_dir.glob("*.jsonl")):
        gid = path.name[: -len(".jsonl")]
        events = []
        for line in path.read_text().splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                bad.append(f"{path.name}: {line[:80]!r}")
        events.sort(key=lambda e: e["t"])
        by_number: dict[int, AttemptJournal] = {}
        for ev in events:
            n = int(ev["attempt"])
            att = by_number.get(n)
            if att is None:
                att = by_number[n] = AttemptJournal(n, ev["t"], ev["t"])
            att.last_t = max(att.last_t, ev["t"])
            if ev["ev"] == "start":
                att.starts += 1
                order.setdefault(gid, []).append(n)
            elif ev["ev"] == "end":
                att.end_code, att.end_t = int(ev["code"]), ev["t"]
            elif ev["ev"] == "stop":
                att.stopped = True
        journals[gid] = sorted(by_number.values(), key=lambda a: a.first_t)
    return journals, order, bad


def _read_json(path: Path, default: object) -> object:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


def read_store(db_file: Path) -> tuple[dict[str, dict], dict[str, list[dict]], str]:
    """Runs, attempts and SQLite's integrity verdict, read-only."""
    conn = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        runs = {r["global_id"]: dict(r) for r in conn.execute(
            "SELECT global_id, status, attempt, exit_code, reason, retries_used, defined FROM runs")}
        attempts: dict[str, list[dict]] = {}
        for a in conn.execute("SELECT global_id, number, node, started_at, ended_at, exit_code, end_reason, interrupted_by, "
                              "stop_reason FROM attempts ORDER BY global_id, number"):
            attempts.setdefault(a["global_id"], []).append(dict(a))
    finally:
        conn.close()
    return runs, attempts, integrity


def load(soak_dir: Path) -> SoakEvidence:
    meta = _read_json(soak_dir / "soak.json", None)
    if not isinstance(meta, dict):
        raise FileNotFoundError(f"{soak_dir}: no soak.json (not a finished soak directory)")
    runs, attempts, integrity = read_store(WorkDir(Path(meta["store_work_dir"])).db_file)
    journals, order, bad = read_journals(soak_dir / "journals")
    verbs = []
    if (soak_dir / "verbs.jsonl").exists():
        verbs = [json.loads(line) for line in (soak_dir / "verbs.jsonl").read_text().splitlines() if line.strip()]
    return SoakEvidence(meta=meta, runs=runs, attempts=attempts, journals=journals, start_order=order, verbs=verbs,
                        feed=_read_json(soak_dir / "feed.json", {}), leftovers=_read_json(soak_dir / "leftovers.json", {}),
                        integrity=integrity, bad_lines=bad)
