"""The store's side of a reload: what the definition files say, applied as a difference.

Part of the store (the only code that reads and writes its tables): `Store.apply_definitions`
hands it one session.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Callable

from sqlalchemy import insert, select, update
from sqlmodel import Session

from juqueue.definitions.models import LoadResult
from juqueue.status import RunStatus
from juqueue.store.tables import EventRow, ExperimentRow, RunRow

_LIVE = (RunStatus.ASSIGNED.value, RunStatus.RUNNING.value)


@dataclass
class ApplySummary:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    undefined: list[str] = field(default_factory=list)
    redefined: list[str] = field(default_factory=list)
    restart: list[str] = field(default_factory=list)  # live runs to stop: what they run changed, or they are gone
    updated_live: list[str] = field(default_factory=list)  # live runs whose other fields changed


def apply_definitions(s: Session, result: LoadResult, now: float | None = None, hold_new: bool = False,
                      dry_run: bool = False, clock: Callable[[], float] | None = None) -> ApplySummary:
    """Apply the difference between what the files define and the store.

    Experiments of files that failed are left exactly as they are. A run whose definition
    changed is updated (a queued run starts with the new definition; a failed or cancelled
    one runs it when requeued); a live one whose command, executor or cluster changed is
    listed in `restart` (the controller stops it and it reruns with the new definition); a run gone from its file
    is kept with its history, marked as no longer defined, and not run. An experiment
    whose runs did not change at all costs one comparison, so a reload is O(changes).
    New runs are queued as of their insert (`now`, else `clock()` then, else `time.time()`):
    comparing the other experiments first is not time they waited.
    """
    summary = ApplySummary()
    failed = set(result.failed_experiments)
    failed_files = set(result.failed_files)  # a file too broken to name its experiment keeps it too
    specs: dict[str, dict[str, object]] = {}
    def_order = {spec.global_id: i for i, spec in enumerate(result.runs)}  # runs queued together start in this order
    for spec in result.runs:
        if spec.experiment in result.experiments and spec.experiment not in failed:
            specs.setdefault(spec.experiment, {})[spec.global_id] = spec
    stored = {row.name: row for row in s.execute(select(ExperimentRow)).scalars()}
    new_runs: list[dict] = []
    events: list[dict] = []
    for name, source in result.experiments.items():
        if name in failed:
            continue
        runs = specs.get(name, {})
        prints = {gid: spec.fingerprint() for gid, spec in runs.items()}  # type: ignore[attr-defined]
        digest = hashlib.sha256(json.dumps(sorted(prints.items())).encode()).hexdigest()[:16]
        row = stored.get(name)
        if row is not None and row.defined and row.fingerprint == digest:
            continue
        exp_row = row
        existing = {
            gid: (fp, status, defined, spec_json)
            for gid, fp, status, defined, spec_json in s.execute(
                select(RunRow.global_id, RunRow.fingerprint, RunRow.status, RunRow.defined, RunRow.spec_json)
                .where(RunRow.experiment == name)
            ).all()
        }
        stamp = now or time.time()
        for gid, spec in runs.items():
            fp = prints[gid]
            if gid not in existing:
                new_runs.append({
                    "global_id": gid, "experiment": spec.experiment, "run_id": spec.id, "cluster": spec.cluster,  # type: ignore[attr-defined]
                    "status": (RunStatus.HELD if hold_new or spec.hold else RunStatus.QUEUED).value,  # type: ignore[attr-defined]
                    "attempt": 0, "spec_json": spec.model_dump_json(), "duration": spec.duration,  # type: ignore[attr-defined]
                    "fingerprint": fp, "depends_on": json.dumps(spec.depends_on), "max_retries": spec.max_retries,  # type: ignore[attr-defined]
                    "retries_used": 0, "defined": True, "queued_at": stamp,
                    "def_order": def_order[gid],
                })
                events.append({"global_id": gid, "ts": stamp, "kind": "defined", "attempt": None, "node": None, "detail": spec.source_file})  # type: ignore[attr-defined]
                summary.added.append(gid)
                continue
            old_fp, status, defined, old_spec = existing[gid]
            values: dict[str, object] = {}
            if not defined:
                values["defined"] = True
                summary.redefined.append(gid)
            if old_fp != fp:
                if status in _LIVE:
                    # What it runs changed: the live attempt is stopped and the run reruns
                    # with the new definition; other edits apply without interrupting it.
                    runs_differently = _execution(old_spec) != _execution(spec.model_dump_json())  # type: ignore[attr-defined]
                    (summary.restart if runs_differently else summary.updated_live).append(gid)
                values.update(cluster=spec.cluster, spec_json=spec.model_dump_json(), duration=spec.duration,  # type: ignore[attr-defined]
                              fingerprint=fp,
                              depends_on=json.dumps(spec.depends_on), max_retries=spec.max_retries)  # type: ignore[attr-defined]
                events.append({"global_id": gid, "ts": stamp, "kind": "redefined", "attempt": None, "node": None, "detail": spec.source_file})  # type: ignore[attr-defined]
                summary.updated.append(gid)
            if values:
                s.execute(update(RunRow).where(RunRow.global_id == gid).values(**values))
        if exp_row is None:
            s.add(ExperimentRow(name=name, source_file=source, defined=True, fingerprint=digest))
        else:
            exp_row.source_file, exp_row.defined, exp_row.fingerprint = source, True, digest
        gone = [gid for gid, (_fp, _st, defined, _spec) in existing.items() if gid not in runs and defined]
        _mark_undefined(s, gone, "removed from its definition file", stamp, events)
        summary.undefined.extend(gone)
        summary.restart.extend(g for g in gone if existing[g][1] in _LIVE)
    # Experiments whose file is gone altogether (not failed: gone).
    for name, row in stored.items():
        if row.defined and name not in result.experiments and name not in failed and row.source_file not in failed_files:
            row.defined = False
            rows = s.execute(select(RunRow.global_id, RunRow.status)
                             .where(RunRow.experiment == name, RunRow.defined == True)).all()  # noqa: E712
            gone = [gid for gid, _status in rows]
            _mark_undefined(s, gone, "its definition file is gone", now or time.time(), events)
            summary.undefined.extend(gone)
            summary.restart.extend(gid for gid, status in rows if status in _LIVE)
    if new_runs:
        if now is None:
            queued_at = (clock or time.time)()
            for row in new_runs:
                row["queued_at"] = queued_at
            for ev in events:
                if ev["kind"] == "defined":
                    ev["ts"] = queued_at
        s.execute(insert(RunRow), new_runs)
    if events:
        s.execute(insert(EventRow), events)
    if dry_run:
        s.rollback()
    else:
        s.commit()
    return summary


def _mark_undefined(s: Session, gids: list[str], why: str, now: float, events: list[dict]) -> None:
    if not gids:
        return
    s.execute(update(RunRow).where(RunRow.global_id.in_(gids)).values(defined=False))  # type: ignore[attr-defined]
    events.extend({"global_id": g, "ts": now, "kind": "undefined", "attempt": None, "node": None, "detail": why} for g in gids)


def _execution(spec_json: str | None) -> tuple:
    """What a run executes: a change here stops a live attempt (other fields do not)."""
    data = json.loads(spec_json or "{}")
    return (data.get("cmd"), data.get("executor"), data.get("cluster"))
