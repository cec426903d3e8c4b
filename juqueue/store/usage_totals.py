"""Running totals of ended attempts per node and experiment (schema version 8), kept by the
batch commit, so node-hour accounting (`/api/usage`, `/api/status`, budgets) reads O(nodes +
live attempts) rows, not every attempt the store has seen.

An attempt counts once it has both started and ended (`accounting.ended_contribution`). The
commit reads the old values of the attempts it changes, so an attempt written twice (an end
recorded again, a reason corrected) moves the totals by the difference only."""

from __future__ import annotations

from sqlalchemy import and_, bindparam, insert, select, update
from sqlalchemy.engine import Connection

from juqueue.accounting import AttemptSpan, BusyTotal, NodeBill, ended_contribution
from juqueue.status import EndReason
from juqueue.store.tables import AttemptRow, NodeRow, UsageTotalRow

SPAN_COLUMNS = ("node", "started_at", "ended_at", "end_reason")  # what a contribution reads
_IN_CHUNK = 500  # (global_id, number) pairs per IN list
_INTERRUPTED = EndReason.INTERRUPTED.value

Key = tuple[str, str]  # (node or "", experiment)


def _contribution(gid: str, row: dict) -> tuple[Key, float, float] | None:
    return ended_contribution(row.get("node"), gid, row.get("started_at"), row.get("ended_at"),
                              row.get("end_reason") == _INTERRUPTED)


def _add(deltas: dict[Key, list[float]], part: tuple[Key, float, float] | None, sign: float) -> None:
    if part is not None:
        key, busy, lost = part
        d = deltas.setdefault(key, [0.0, 0.0, 0])
        d[0] += sign * busy
        d[1] += sign * lost
        d[2] += int(sign)


def _old_spans(conn: Connection, keys: list[tuple[str, int]]) -> dict[tuple[str, int], dict]:
    out: dict[tuple[str, int], dict] = {}
    cols = [AttemptRow.global_id, AttemptRow.number] + [getattr(AttemptRow, c) for c in SPAN_COLUMNS]
    wanted = set(keys)
    gids = sorted({k[0] for k in keys})
    for start in range(0, len(gids), _IN_CHUNK):  # on the global_id index; a run has few attempts
        stmt = select(*cols).where(AttemptRow.global_id.in_(gids[start:start + _IN_CHUNK]))  # type: ignore[attr-defined]
        for gid, num, *values in conn.execute(stmt).all():
            if (gid, num) in wanted:
                out[(gid, num)] = dict(zip(SPAN_COLUMNS, values))
    return out


def deltas_of(conn: Connection, new_attempts: list[dict],
              changed: dict[tuple[str, int], dict]) -> dict[Key, list[float]]:
    """What a batch adds to the totals: its new attempts, and its changes to existing ones
    (read before the batch's updates run, in the same transaction)."""
    deltas: dict[Key, list[float]] = {}
    for row in new_attempts:
        _add(deltas, _contribution(row["global_id"], row), 1.0)
    touched = [key for key, values in changed.items() if any(c in values for c in SPAN_COLUMNS)]
    if touched:
        inserted = {(row["global_id"], row["number"]): row for row in new_attempts}
        old = _old_spans(conn, [key for key in touched if key not in inserted])
        for key in touched:
            before = old.get(key) or inserted.get(key)  # an attempt inserted by this batch and then changed
            if before is None:
                continue  # not in the store (yet): its update changes nothing
            _add(deltas, _contribution(key[0], before), -1.0)
            _add(deltas, _contribution(key[0], {**before, **{c: v for c, v in changed[key].items() if c in SPAN_COLUMNS}}), 1.0)
    return {k: d for k, d in deltas.items() if d[0] or d[1] or d[2]}


def apply_deltas(conn: Connection, deltas: dict[Key, list[float]]) -> None:
    """Add the deltas to their rows; a key seen for the first time gets its row."""
    if not deltas:
        return
    t = UsageTotalRow.__table__  # type: ignore[attr-defined]
    have: set[Key] = set()
    nodes = sorted({k[0] for k in deltas})
    for start in range(0, len(nodes), _IN_CHUNK):  # on the primary key (node, experiment)
        stmt = select(t.c.node, t.c.experiment).where(t.c.node.in_(nodes[start:start + _IN_CHUNK]))
        have.update((node, exp) for node, exp in conn.execute(stmt).all() if (node, exp) in deltas)
    rows = [{"b_node": k[0], "b_exp": k[1], "d_busy": d[0], "d_lost": d[1], "d_n": d[2]} for k, d in deltas.items() if k in have]
    if rows:
        conn.execute(update(t).where(and_(t.c.node == bindparam("b_node"), t.c.experiment == bindparam("b_exp")))
                     .values(busy_s=t.c.busy_s + bindparam("d_busy"), lost_s=t.c.lost_s + bindparam("d_lost"),
                             attempts=t.c.attempts + bindparam("d_n")), rows)
    new = [{"node": k[0], "experiment": k[1], "busy_s": d[0], "lost_s": d[1], "attempts": int(d[2])}
           for k, d in deltas.items() if k not in have]
    if new:
        conn.execute(insert(t), new)


def fill_from_attempts(conn: Connection) -> None:
    """The totals of every ended attempt in the store (the upgrade to version 8): read once,
    a page at a time."""
    deltas: dict[Key, list[float]] = {}
    t = AttemptRow.__table__  # type: ignore[attr-defined]
    stmt = select(t.c.global_id, t.c.node, t.c.started_at, t.c.ended_at, t.c.end_reason).where(
        t.c.started_at.is_not(None), t.c.ended_at.is_not(None))
    for gid, node, started, ended, reason in conn.execute(stmt.execution_options(yield_per=10_000)):
        _add(deltas, ended_contribution(node, gid, started, ended, reason == _INTERRUPTED), 1.0)
    apply_deltas(conn, deltas)


def usage_inputs(conn: Connection) -> tuple[list[NodeBill], list[AttemptSpan], list[BusyTotal]]:
    """Every node's billing, the attempts that started and have not ended (on the ended_at
    index), and the ended ones' totals: what `accounting.compute_usage` reads."""
    nodes = [NodeBill(name, cluster, slots, bf, bu, bool(est)) for name, cluster, slots, bf, bu, est in conn.execute(
        select(NodeRow.name, NodeRow.cluster, NodeRow.slots_total, NodeRow.billed_from, NodeRow.billed_until,
               NodeRow.billed_estimated)).all()]
    live = [AttemptSpan(node, gid.split("@", 1)[0], started, None, reason == _INTERRUPTED)
            for gid, node, started, reason in conn.execute(
                select(AttemptRow.global_id, AttemptRow.node, AttemptRow.started_at, AttemptRow.end_reason)
                .where(AttemptRow.ended_at.is_(None), AttemptRow.started_at.is_not(None))).all()]  # type: ignore[union-attr]
    t = UsageTotalRow.__table__  # type: ignore[attr-defined]
    totals = [BusyTotal(node or None, exp, busy, lost) for node, exp, busy, lost in conn.execute(
        select(t.c.node, t.c.experiment, t.c.busy_s, t.c.lost_s).where(t.c.attempts > 0)).all()]  # 0: all moved elsewhere
    return nodes, live, totals
