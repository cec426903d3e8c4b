"""The one module that reads and writes the store.

The controller writes in batches (one transaction per batch of events); readers (the API)
use their own sessions. Hot paths use SQLAlchemy Core executemany, not one ORM object per
row, so 100,000 runs do not slow a batch down.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Iterable

from sqlalchemy import and_, bindparam, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from juqueue.accounting import AttemptSpan, NodeBill
from juqueue.definitions.models import LoadResult
from juqueue.status import EndReason, RunStatus
from juqueue.store.tables import AttemptRow, EventRow, ExperimentRow, NodeRow, RunRow, UsageSampleRow

_LIVE = (RunStatus.ASSIGNED.value, RunStatus.RUNNING.value)
RUN_MUTABLE = ("status", "attempt", "exit_code", "node", "reason", "retries_used", "queued_at", "started_at", "ended_at")
ATTEMPT_MUTABLE = ("node", "slot", "pid", "pgid_start", "started_at", "ended_at", "exit_code", "end_reason", "interrupted_by", "stop_requested", "stop_reason")
NODE_MUTABLE = ("state", "job_id", "host", "pid", "version", "reason", "started_at", "last_heartbeat", "ended_at", "time_limit_at",
                "billed_from", "billed_until", "billed_estimated", "replaces", "protected_until")


@dataclass
class WriteBatch:
    """Changes gathered during one loop iteration, committed in one transaction."""

    runs: dict[str, dict] = field(default_factory=dict)  # gid -> mutable columns
    new_attempts: list[dict] = field(default_factory=list)
    attempts: dict[tuple[str, int], dict] = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)
    new_nodes: list[dict] = field(default_factory=list)
    nodes: dict[str, dict] = field(default_factory=dict)
    usage_samples: list[dict] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.runs or self.new_attempts or self.attempts or self.events or self.new_nodes or self.nodes
                    or self.usage_samples)

    def event(self, gid: str, kind: str, attempt: int | None = None, node: str | None = None, detail: str | None = None, ts: float | None = None) -> None:
        self.events.append({"global_id": gid, "ts": ts or time.time(), "kind": kind, "attempt": attempt, "node": node, "detail": detail})


@dataclass
class ApplySummary:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    undefined: list[str] = field(default_factory=list)
    redefined: list[str] = field(default_factory=list)
    restart: list[str] = field(default_factory=list)  # live runs to stop: what they run changed, or they are gone
    updated_live: list[str] = field(default_factory=list)  # live runs whose other fields changed


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # ---- batch writes -------------------------------------------------------------------
    def commit(self, batch: WriteBatch) -> None:
        if not batch:
            return
        with self.engine.begin() as conn:
            if batch.new_nodes:
                conn.execute(insert(NodeRow), batch.new_nodes)
            if batch.nodes:
                rows = [{"b_name": name, **values} for name, values in batch.nodes.items()]
                for cols, group in _group_by_columns(rows).items():
                    stmt = update(NodeRow).where(NodeRow.name == bindparam("b_name")).values({c: bindparam(c) for c in cols})
                    conn.execute(stmt, group)
            if batch.runs:
                rows = [{"b_gid": gid, **values} for gid, values in batch.runs.items()]
                for cols, group in _group_by_columns(rows).items():
                    stmt = update(RunRow).where(RunRow.global_id == bindparam("b_gid")).values({c: bindparam(c) for c in cols})
                    conn.execute(stmt, group)
            if batch.new_attempts:
                conn.execute(insert(AttemptRow), batch.new_attempts)
            if batch.attempts:
                rows = [{"b_gid": gid, "b_num": num, **values} for (gid, num), values in batch.attempts.items()]
                for cols, group in _group_by_columns(rows).items():
                    stmt = (
                        update(AttemptRow)
                        .where(and_(AttemptRow.global_id == bindparam("b_gid"), AttemptRow.number == bindparam("b_num")))
                        .values({c: bindparam(c) for c in cols})
                    )
                    conn.execute(stmt, group)
            if batch.events:
                conn.execute(insert(EventRow), batch.events)
            if batch.usage_samples:
                conn.execute(insert(UsageSampleRow), batch.usage_samples)

    # ---- definitions --------------------------------------------------------------------
    def apply_definitions(self, result: LoadResult, now: float | None = None, hold_new: bool = False,
                          dry_run: bool = False) -> ApplySummary:
        """Apply the difference between what the files define and the store.

        Experiments of files that failed are left exactly as they are. A run whose definition
        changed is updated (a queued run starts with the new definition; a failed or cancelled
        one runs it when requeued); a live one whose command, executor or cluster changed is
        listed in `restart` (the controller stops it and it reruns with the new definition); a run gone from its file
        is kept with its history, marked as no longer defined, and not run. An experiment
        whose runs did not change at all costs one comparison, so a reload is O(changes).
        """
        summary = ApplySummary()
        failed = set(result.failed_experiments)
        failed_files = set(result.failed_files)  # a file too broken to name its experiment keeps it too
        specs: dict[str, dict[str, object]] = {}
        for spec in result.runs:
            if spec.experiment in result.experiments and spec.experiment not in failed:
                specs.setdefault(spec.experiment, {})[spec.global_id] = spec
        with self.session() as s:
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
                            "attempt": 0, "spec_json": spec.model_dump_json(),  # type: ignore[attr-defined]
                            "fingerprint": fp, "depends_on": json.dumps(spec.depends_on), "max_retries": spec.max_retries,  # type: ignore[attr-defined]
                            "retries_used": 0, "defined": True, "queued_at": stamp,
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
                        values.update(cluster=spec.cluster, spec_json=spec.model_dump_json(), fingerprint=fp,  # type: ignore[attr-defined]
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
                self._mark_undefined(s, gone, "removed from its definition file", stamp, events)
                summary.undefined.extend(gone)
                summary.restart.extend(g for g in gone if existing[g][1] in _LIVE)
            # Experiments whose file is gone altogether (not failed: gone).
            for name, row in stored.items():
                if row.defined and name not in result.experiments and name not in failed and row.source_file not in failed_files:
                    row.defined = False
                    rows = s.execute(select(RunRow.global_id, RunRow.status)
                                     .where(RunRow.experiment == name, RunRow.defined == True)).all()  # noqa: E712
                    gone = [gid for gid, _status in rows]
                    self._mark_undefined(s, gone, "its definition file is gone", now or time.time(), events)
                    summary.undefined.extend(gone)
                    summary.restart.extend(gid for gid, status in rows if status in _LIVE)
            if new_runs:
                s.execute(insert(RunRow), new_runs)
            if events:
                s.execute(insert(EventRow), events)
            if dry_run:
                s.rollback()
            else:
                s.commit()
        return summary

    @staticmethod
    def _mark_undefined(s: Session, gids: list[str], why: str, now: float, events: list[dict]) -> None:
        if not gids:
            return
        s.execute(update(RunRow).where(RunRow.global_id.in_(gids)).values(defined=False))  # type: ignore[attr-defined]
        events.extend({"global_id": g, "ts": now, "kind": "undefined", "attempt": None, "node": None, "detail": why} for g in gids)

    # ---- reads --------------------------------------------------------------------------
    def active_runs(self) -> list[RunRow]:
        with self.session() as s:
            live = [RunStatus.HELD.value, RunStatus.QUEUED.value, RunStatus.ASSIGNED.value, RunStatus.RUNNING.value]
            return list(s.execute(select(RunRow).where(RunRow.status.in_(live))).scalars())  # type: ignore[attr-defined]

    def runs_by_id(self, gids: Iterable[str]) -> dict[str, RunRow]:
        gids = list(gids)
        if not gids:
            return {}
        with self.session() as s:
            return {r.global_id: r for r in s.execute(select(RunRow).where(RunRow.global_id.in_(gids))).scalars()}  # type: ignore[attr-defined]

    def last_moves(self, gids: Iterable[str]) -> dict[str, float]:
        """When each run was last moved by consolidation (its move cooldown survives a restart)."""
        gids = list(gids)
        if not gids:
            return {}
        when = func.coalesce(AttemptRow.ended_at, AttemptRow.started_at, AttemptRow.published_at)
        stmt = (select(AttemptRow.global_id, func.max(when))
                .where(AttemptRow.global_id.in_(gids), AttemptRow.stop_reason == "move")  # type: ignore[attr-defined]
                .group_by(AttemptRow.global_id))
        with self.session() as s:
            return {gid: float(ts) for gid, ts in s.execute(stmt).all() if ts is not None}

    def completed_durations(self, experiments: Iterable[str], limit: int = 200) -> dict[str, list[float]]:
        """Run times of each experiment's latest completed runs: the basis of expected durations."""
        out: dict[str, list[float]] = {}
        with self.session() as s:
            for exp in set(experiments):
                rows = s.execute(
                    select(RunRow.started_at, RunRow.ended_at)
                    .where(RunRow.experiment == exp, RunRow.status == RunStatus.COMPLETED.value,
                           RunRow.started_at.is_not(None), RunRow.ended_at.is_not(None))  # type: ignore[union-attr]
                    .order_by(RunRow.ended_at.desc()).limit(limit)  # type: ignore[union-attr]
                ).all()
                out[exp] = [max(0.0, e - st) for st, e in rows]
        return out

    def usage_inputs(self) -> tuple[list[NodeBill], list[AttemptSpan]]:
        """What node-hour accounting reads: every node's billed interval and every attempt that
        started (only the columns it needs, so 100,000 attempts stay cheap)."""
        with self.session() as s:
            nodes = [
                NodeBill(name, cluster, slots, bf, bu, bool(est))
                for name, cluster, slots, bf, bu, est in s.execute(
                    select(NodeRow.name, NodeRow.cluster, NodeRow.slots_total, NodeRow.billed_from,
                           NodeRow.billed_until, NodeRow.billed_estimated)
                ).all()
            ]
            attempts = [
                AttemptSpan(node, gid.split("@", 1)[0], started, ended, reason == EndReason.INTERRUPTED.value)
                for gid, node, started, ended, reason in s.execute(
                    select(AttemptRow.global_id, AttemptRow.node, AttemptRow.started_at, AttemptRow.ended_at,
                           AttemptRow.end_reason).where(AttemptRow.started_at.is_not(None))  # type: ignore[union-attr]
                ).all()
            ]
        return nodes, attempts

    def usage_series(self, since: float | None = None) -> dict[str, list[tuple[float, int, int]]]:
        stmt = select(UsageSampleRow.cluster, UsageSampleRow.ts, UsageSampleRow.nodes, UsageSampleRow.slots_busy)
        if since is not None:
            stmt = stmt.where(UsageSampleRow.ts >= since)
        out: dict[str, list[tuple[float, int, int]]] = {}
        with self.session() as s:
            for cluster, ts, nodes, busy in s.execute(stmt.order_by(UsageSampleRow.ts)).all():  # type: ignore[arg-type]
                out.setdefault(cluster, []).append((ts, nodes, busy))
        return out

    def statuses(self, gids: Iterable[str]) -> dict[str, RunStatus]:
        gids = list(gids)
        if not gids:
            return {}
        with self.session() as s:
            rows = s.execute(select(RunRow.global_id, RunRow.status).where(RunRow.global_id.in_(gids))).all()  # type: ignore[attr-defined]
            return {gid: RunStatus(status) for gid, status in rows}

    def latest_attempts(self, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], AttemptRow]:
        keys = list(keys)
        if not keys:
            return {}
        gids = {k[0] for k in keys}
        with self.session() as s:
            rows = s.execute(select(AttemptRow).where(AttemptRow.global_id.in_(gids))).scalars()  # type: ignore[attr-defined]
            wanted = set(keys)
            return {(r.global_id, r.number): r for r in rows if (r.global_id, r.number) in wanted}

    def live_nodes(self) -> list[NodeRow]:
        from juqueue.status import NodeState

        live = [s.value for s in NodeState if s.is_live]
        with self.session() as s:
            return list(s.execute(select(NodeRow).where(NodeRow.state.in_(live))).scalars())  # type: ignore[attr-defined]

    def all_nodes(self, limit: int = 500) -> list[NodeRow]:
        with self.session() as s:
            return list(s.execute(select(NodeRow).order_by(NodeRow.created_at.desc()).limit(limit)).scalars())  # type: ignore[attr-defined]

    def list_runs(self, experiment: str | None = None, status: str | None = None, limit: int | None = None) -> list[RunRow]:
        with self.session() as s:
            q = select(RunRow)
            if experiment:
                q = q.where(RunRow.experiment == experiment)
            if status:
                q = q.where(RunRow.status == status)
            q = q.order_by(RunRow.experiment, RunRow.run_id)
            if limit:
                q = q.limit(limit)
            return list(s.execute(q).scalars())

    def get_run(self, gid: str) -> RunRow | None:
        with self.session() as s:
            return s.get(RunRow, gid)

    def attempts_of(self, gid: str) -> list[AttemptRow]:
        with self.session() as s:
            return list(s.execute(select(AttemptRow).where(AttemptRow.global_id == gid).order_by(AttemptRow.number)).scalars())

    def events_of(self, gid: str) -> list[EventRow]:
        with self.session() as s:
            return list(s.execute(select(EventRow).where(EventRow.global_id == gid).order_by(EventRow.id)).scalars())

    def status_counts(self) -> dict[str, int]:
        with self.session() as s:
            rows = s.execute(select(RunRow.status, func.count()).group_by(RunRow.status)).all()
            return {status: n for status, n in rows}

    def experiments(self) -> list[ExperimentRow]:
        with self.session() as s:
            return list(s.execute(select(ExperimentRow).order_by(ExperimentRow.name)).scalars())


def _execution(spec_json: str | None) -> tuple:
    """What a run executes: a change here stops a live attempt (other fields do not)."""
    data = json.loads(spec_json or "{}")
    return (data.get("cmd"), data.get("executor"), data.get("cluster"))


def _group_by_columns(rows: list[dict]) -> dict[tuple[str, ...], list[dict]]:
    """executemany needs the same columns in every row: group rows by their column set."""
    groups: dict[tuple[str, ...], list[dict]] = {}
    for row in rows:
        cols = tuple(sorted(k for k in row if not k.startswith("b_")))
        groups.setdefault(cols, []).append(row)
    return groups
