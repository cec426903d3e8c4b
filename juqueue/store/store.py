"""The one module that reads and writes the store.

The controller writes in batches (one transaction per batch of events); readers (the API)
use their own sessions. Hot paths use SQLAlchemy Core executemany, not one ORM object per
row, so 100,000 runs do not slow a batch down.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from sqlalchemy import and_, bindparam, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from juqueue.accounting import AttemptSpan, BusyTotal, NodeBill
from juqueue.definitions.models import LoadResult
from juqueue.status import RunStatus
from juqueue.store import usage_totals
from juqueue.store.definition_sync import ApplySummary, apply_definitions
from juqueue.store.experiment_reads import RemainingWork, remaining_work
from juqueue.store.run_query import RunFilter, order_by
from juqueue.store.tables import AttemptRow, EventRow, ExperimentRow, NodeRow, RunRow, UsageSampleRow

_PAGE_BY_IDS = 1000  # pages up to this size are read ids first (an IN list of at most this many)
_IN_CHUNK = 10_000  # ids per IN list when a caller may pass more
_LIVE = (RunStatus.ASSIGNED.value, RunStatus.RUNNING.value)
RUN_MUTABLE = ("status", "attempt", "exit_code", "node", "reason", "retries_used", "queued_at", "started_at", "ended_at")
ATTEMPT_MUTABLE = ("node", "slot", "pid", "pgid_start", "started_at", "ended_at", "exit_code", "end_reason", "interrupted_by", "stop_requested", "stop_reason",
                   "last_checkpoint_at")
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


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def reset_connections(self) -> None:
        """Close the pooled connections: SQLite keeps a connection opened while its file could not
        be written read-only for good, so after an outage every write on it would fail again."""
        self.engine.dispose()

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
            deltas = usage_totals.deltas_of(conn, batch.new_attempts, batch.attempts)  # before the updates
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
            usage_totals.apply_deltas(conn, deltas)
            if batch.events:
                conn.execute(insert(EventRow), batch.events)
            if batch.usage_samples:
                conn.execute(insert(UsageSampleRow), batch.usage_samples)

    # ---- definitions --------------------------------------------------------------------
    def apply_definitions(self, result: LoadResult, now: float | None = None, hold_new: bool = False,
                          dry_run: bool = False, clock: Callable[[], float] | None = None) -> ApplySummary:
        """Apply the difference between what the files define and the store (`definition_sync`)."""
        with self.session() as s:
            return apply_definitions(s, result, now, hold_new, dry_run, clock)

    # ---- reads --------------------------------------------------------------------------
    def active_runs(self) -> list[RunRow]:
        with self.session() as s:
            live = [RunStatus.HELD.value, RunStatus.QUEUED.value, RunStatus.ASSIGNED.value, RunStatus.RUNNING.value]
            return list(s.execute(select(RunRow).where(RunRow.status.in_(live))).scalars())  # type: ignore[attr-defined]

    def iter_active_runs(self, columns: Iterable[str]) -> Iterator[tuple]:  # type: ignore[type-arg]
        """`columns` of the runs that are not final, streamed a page at a time as plain tuples (no
        ORM objects): memory is rebuilt from 100,000 of them without holding them all at once."""
        live = [RunStatus.HELD.value, RunStatus.QUEUED.value, RunStatus.ASSIGNED.value, RunStatus.RUNNING.value]
        table = RunRow.__table__  # type: ignore[attr-defined]
        stmt = select(*(table.c[c] for c in columns)).where(table.c.status.in_(live)).execution_options(yield_per=5000)
        with self.engine.connect() as conn:
            for row in conn.execute(stmt):
                yield tuple(row)

    def spec_jsons(self, gids: Iterable[str]) -> dict[str, str]:
        """The stored definitions of these runs (placement reads them: memory does not keep them)."""
        gids = list(gids)
        out: dict[str, str] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(gids), _IN_CHUNK):
                part = gids[start:start + _IN_CHUNK]
                out.update(conn.execute(select(RunRow.global_id, RunRow.spec_json).where(RunRow.global_id.in_(part))).all())  # type: ignore[attr-defined,arg-type]
        return out

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
        out: dict[str, float] = {}
        with self.session() as s:
            for start in range(0, len(gids), _IN_CHUNK):  # 100,000 live runs: SQLite allows 32,766 values per statement
                stmt = (select(AttemptRow.global_id, func.max(when))
                        .where(AttemptRow.global_id.in_(gids[start:start + _IN_CHUNK]), AttemptRow.stop_reason == "move")  # type: ignore[attr-defined]
                        .group_by(AttemptRow.global_id))
                out.update((gid, float(ts)) for gid, ts in s.execute(stmt).all() if ts is not None)
        return out

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

    def usage_inputs(self) -> tuple[list[NodeBill], list[AttemptSpan], list[BusyTotal]]:
        """What node-hour accounting reads: every node's billed interval, the attempts that run
        now and the running totals of those that ended (`usage_totals`): no attempt history."""
        with self.engine.connect() as conn:
            return usage_totals.usage_inputs(conn)

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
        out: dict[str, RunStatus] = {}
        with self.session() as s:
            for start in range(0, len(gids), _IN_CHUNK):  # SQLite allows 32,766 bound values per statement
                part = gids[start:start + _IN_CHUNK]
                rows = s.execute(select(RunRow.global_id, RunRow.status).where(RunRow.global_id.in_(part))).all()  # type: ignore[attr-defined]
                out.update((gid, RunStatus(status)) for gid, status in rows)
        return out

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

    def list_runs(self, where: RunFilter | None = None, *, offset: int = 0, limit: int | None = None,
                  sort: str | None = None) -> list[RunRow]:
        """A page of the runs matching `where` (None: all), ordered by `sort` (run_query.order_by;
        default experiment, run id), from `offset`, at most `limit`."""
        where = where or RunFilter()
        paged = limit is not None and limit <= _PAGE_BY_IDS
        # A page: its ids first (filtered and sorted on the indexes, no wide rows), then those rows.
        q = select(RunRow.global_id if paged else RunRow).where(where.where()).order_by(*order_by(sort))
        if offset:
            q = q.offset(offset)
        if limit:
            q = q.limit(limit)
        with self.session() as s:
            if not paged:
                return list(s.execute(q).scalars())
            ids = list(s.execute(q).scalars())
            rows = {r.global_id: r for r in s.execute(select(RunRow).where(RunRow.global_id.in_(ids))).scalars()} if ids else {}  # type: ignore[attr-defined]
        return [rows[g] for g in ids if g in rows]

    def count_runs(self, where: RunFilter) -> int:
        """How many runs match (the runs list's total)."""
        with self.session() as s:
            return int(s.execute(select(func.count()).select_from(RunRow).where(where.where())).scalar() or 0)

    def run_ids(self, where: RunFilter) -> list[str]:
        """The global ids of every run that matches, in the default order: one query, ids only
        (a selection of 100,000 runs must not load their specs)."""
        with self.session() as s:
            return list(s.execute(select(RunRow.global_id).where(where.where()).order_by(*order_by(None))).scalars())

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

    def experiment_status_counts(self) -> dict[str, dict[str, int]]:
        """Runs per experiment and status (one grouped query on the runs' status index)."""
        with self.session() as s:
            out: dict[str, dict[str, int]] = {}
            for exp, status, n in s.execute(select(RunRow.experiment, RunRow.status, func.count())
                                            .group_by(RunRow.experiment, RunRow.status)).all():
                out.setdefault(exp, {})[status] = n
            return out

    def remaining_work(self, now: float) -> dict[str, RemainingWork]:
        """Per experiment with queued or live runs: their cluster and expected run-seconds left."""
        with self.session() as s:
            return remaining_work(s, now, self.completed_durations)

    def node_backend(self, name: str) -> str | None:
        """The backend of a node that may have left the controller's memory (None: unknown)."""
        with self.session() as s:
            return s.execute(select(NodeRow.backend).where(NodeRow.name == name)).scalar()  # type: ignore[arg-type]

    def node_hosts(self, names: Iterable[str]) -> dict[str, str | None]:
        """Each named node's host (a run's attempts show where they ran)."""
        names = list(set(names))
        if not names:
            return {}
        with self.session() as s:
            return dict(s.execute(select(NodeRow.name, NodeRow.host).where(NodeRow.name.in_(names))).all())  # type: ignore[attr-defined,arg-type]

    def experiments(self) -> list[ExperimentRow]:
        with self.session() as s:
            return list(s.execute(select(ExperimentRow).order_by(ExperimentRow.name)).scalars())


def _group_by_columns(rows: list[dict]) -> dict[tuple[str, ...], list[dict]]:
    """executemany needs the same columns in every row: group rows by their column set."""
    groups: dict[tuple[str, ...], list[dict]] = {}
    for row in rows:
        cols = tuple(sorted(k for k in row if not k.startswith("b_")))
        groups.setdefault(cols, []).append(row)
    return groups
