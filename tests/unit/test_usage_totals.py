"""Running usage totals (schema version 8): the batch commit keeps them, the upgrade fills them
from the attempts a store has, and either way accounting equals a recount of every attempt."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import insert, select

from juqueue.accounting import AttemptSpan, compute_usage
from juqueue.paths import WorkDir
from juqueue.status import EndReason
from juqueue.store.engine import make_engine
from juqueue.store.migrations import MIGRATIONS, prepare_schema
from juqueue.store.store import Store, WriteBatch
from juqueue.store.tables import AttemptRow, NodeRow, UsageTotalRow

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
NOW = 1_700_100_000.0


def recount(store: Store) -> dict:
    """Usage as it was computed before the totals: every attempt that started, read and summed."""
    nodes, _live, _ended = store.usage_inputs()
    with store.engine.connect() as conn:
        attempts = [AttemptSpan(node, gid.split("@", 1)[0], started, ended, reason == EndReason.INTERRUPTED.value)
                    for gid, node, started, ended, reason in conn.execute(
                        select(AttemptRow.global_id, AttemptRow.node, AttemptRow.started_at, AttemptRow.ended_at,
                               AttemptRow.end_reason).where(AttemptRow.started_at.is_not(None))).all()]  # type: ignore[union-attr]
    return compute_usage(nodes, attempts, NOW).as_dict()


def from_totals(store: Store) -> dict:
    nodes, live, ended = store.usage_inputs()
    return compute_usage(nodes, live, NOW, ended).as_dict()


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for section in ("clusters", "experiments"):
        assert a[section].keys() == b[section].keys(), section
        for name in a[section]:
            for key, value in a[section][name].items():
                assert b[section][name][key] == (pytest.approx(value, rel=1e-9, abs=1e-6) if isinstance(value, float) else value), (section, name, key)
    assert a["unattributed_node_hours"] == pytest.approx(b["unattributed_node_hours"])


def test_totals_equal_a_recount_after_a_mixed_workload(tmp_path: Path) -> None:
    """New attempts, starts, ends (exited, interrupted, cancelled), an end written twice, a
    node corrected after the end, attempts without a node and attempts never started: after
    each batch the totals give what a recount of every attempt gives."""
    engine = make_engine(None, tmp_path)
    store = Store(engine)
    rnd = random.Random(7)
    with engine.begin() as conn:
        conn.execute(insert(NodeRow), [{"name": f"n{i}", "cluster": "c" + str(i % 2), "backend": "local", "token": "t",
                                        "state": "gone", "slots_total": 4, "billed_from": NOW - 5000 + i,
                                        "billed_until": None if i == 3 else NOW - 100 * i} for i in range(5)])
    attempts: dict[tuple[str, int], dict] = {}
    try:
        for step in range(40):
            batch = WriteBatch()
            for _ in range(rnd.randrange(1, 8)):  # new attempts, some already ended (fenced, settled at once)
                gid = f"e{rnd.randrange(3)}@r{rnd.randrange(30)}"
                num = 1 + max((n for g, n in attempts if g == gid), default=0)
                row = {"global_id": gid, "number": num, "node": rnd.choice(["n0", "n1", "n2", "n3", "n4", "gone-node", None]),
                       "published_at": NOW - 4000 + step, "started_at": None, "ended_at": None, "end_reason": None}
                if rnd.random() < 0.2:
                    row.update(started_at=NOW - 3000 + step, ended_at=NOW - 2900 + step, end_reason="interrupted")
                batch.new_attempts.append(row)
                attempts[(gid, num)] = dict(row)
            for key in rnd.sample(sorted(attempts), min(len(attempts), rnd.randrange(0, 10))):
                cols = batch.attempts.setdefault(key, {})
                a = attempts[key]
                roll = rnd.random()
                if a.get("started_at") is None:
                    cols["started_at"] = NOW - 3000 + step * 3 + rnd.random()
                elif roll < 0.6:  # an end, or the end written again
                    cols["ended_at"] = a["started_at"] + rnd.uniform(0, 500)
                    cols["end_reason"] = rnd.choice([e.value for e in EndReason])
                elif roll < 0.8:
                    cols["node"] = rnd.choice(["n0", "n4", None])
                else:
                    cols["pid"] = rnd.randrange(1000)  # a change that moves no total
                a.update(cols)
            store.commit(batch)
            assert_same(recount(store), from_totals(store))
        assert any(a.get("ended_at") is None and a.get("started_at") is not None for a in attempts.values())  # live ones too
    finally:
        engine.dispose()


def test_upgrade_to_v8_fills_the_totals_from_the_attempts(tmp_path: Path) -> None:
    """A version-6 store (the v1 fixture upgraded that far) gets totals that equal a recount."""
    db = WorkDir(tmp_path).db_file
    db.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db)
    conn.executescript((FIXTURES / "store_v1.sql").read_text())
    conn.close()
    plain = sqlalchemy.create_engine(f"sqlite:///{db}")
    try:
        assert prepare_schema(plain, migrations=MIGRATIONS[:5]) == 6
        with plain.connect() as c:
            ended = c.exec_driver_sql("SELECT count(*) FROM attempts WHERE started_at IS NOT NULL AND ended_at IS NOT NULL").scalar()
        assert ended and ended >= 3  # the fixture has ended attempts to fill from
    finally:
        plain.dispose()
    engine = make_engine(None, tmp_path)
    try:
        store = Store(engine)
        with engine.connect() as c:
            rows = c.execute(select(UsageTotalRow.attempts)).scalars().all()  # type: ignore[call-overload]
        assert sum(rows) == ended
        assert_same(recount(store), from_totals(store))
        assert from_totals(store)["experiments"]["legacy"]["busy_slot_hours"] > 0
    finally:
        engine.dispose()
