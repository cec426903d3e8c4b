"""Schema versions: a store written by an earlier release is upgraded in one transaction,
keeps every row, and ends up with the same schema a fresh store has; a newer store is refused.

The version-1 store is tests/fixtures/store_v1.sql, written by the release before versions
existed (see tests/fixtures/make_store_v1.py).
"""

from __future__ import annotations

import functools
import logging
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from juqueue.errors import StoreSchemaError
from juqueue.paths import WorkDir
from juqueue.store import engine as engine_module
from juqueue.store import migrations
from juqueue.store.engine import make_engine
from juqueue.store.migrations import LATEST_VERSION, MIGRATIONS, Migration, prepare_schema, read_version
from juqueue.store.run_query import RunFilter
from juqueue.store.store import Store, WriteBatch
from juqueue.version import __version__

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
V1_DUMP = FIXTURES / "store_v1.sql"
V1_POSTGRESQL_DDL = FIXTURES / "schema_v1_postgresql.sql"
TABLES = {"experiments": "name", "runs": "global_id", "nodes": "name", "attempts": "id", "events": "id"}  # table -> primary key
V1_COUNTS = {"experiments": 1, "runs": 7, "nodes": 2, "attempts": 6, "events": 27}


def load_v1(work: Path) -> Path:
    """The v1 fixture as the work dir's store file."""
    db = WorkDir(work).db_file
    db.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db)
    conn.executescript(V1_DUMP.read_text())
    conn.close()
    return db


def columns(engine: Engine, table: str) -> list[str]:
    return [c["name"] for c in inspect(engine).get_columns(table)]


def snapshot(engine: Engine, cols: dict[str, list[str]]) -> dict[str, list[tuple]]:
    """Every row of every table, restricted to `cols` (the version-1 columns), in primary-key order."""
    with engine.connect() as conn:
        return {t: [tuple(r) for r in conn.execute(text(f"SELECT {', '.join(cols[t])} FROM {t} ORDER BY {pk}"))]
                for t, pk in TABLES.items()}


def schema(engine: Engine) -> dict:
    """Tables, columns (name, type, nullable), primary keys and indexes; column order is not compared."""
    insp = inspect(engine)
    out = {}
    for t in sorted(insp.get_table_names()):
        cols = sorted((c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(t))
        pk = insp.get_pk_constraint(t)["constrained_columns"]
        idx = sorted((i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in insp.get_indexes(t))
        out[t] = (cols, pk, idx)
    return out


def version_row(engine: Engine) -> tuple | None:
    with engine.connect() as conn:
        if "schema_version" not in inspect(conn).get_table_names():
            return None
        return tuple(conn.execute(text("SELECT id, version, written_by FROM schema_version")).one())


def store_version(engine: Engine) -> int | None:
    with engine.connect() as conn:
        return read_version(conn)


def test_migrations_are_one_per_version_in_order() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(2, LATEST_VERSION + 1))
    assert LATEST_VERSION >= 2


# ---------------------------------------------------------------------------- SQLite
def test_v1_store_is_upgraded_with_every_row_intact(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    load_v1(tmp_path)
    plain = sqlalchemy.create_engine(f"sqlite:///{WorkDir(tmp_path).db_file}")
    assert store_version(plain) == 1 and version_row(plain) is None  # as the previous release left it
    v1_cols = {t: columns(plain, t) for t in TABLES}
    assert "stop_reason" not in v1_cols["attempts"]
    before = snapshot(plain, v1_cols)
    plain.dispose()
    assert {t: len(rows) for t, rows in before.items()} == V1_COUNTS

    with caplog.at_level(logging.INFO, logger="juqueue.store.migrations"):
        engine = make_engine(None, tmp_path)
    assert any("schema version 2: add attempts.stop_reason" in r.getMessage() for r in caplog.records)
    assert any("upgraded" in r.getMessage() and f"from schema version 1 to {LATEST_VERSION}" in r.getMessage() for r in caplog.records)
    try:
        assert store_version(engine) == LATEST_VERSION
        assert version_row(engine) == (1, LATEST_VERSION, __version__)
        assert snapshot(engine, v1_cols) == before
        assert "stop_reason" in columns(engine, "attempts")
        assert "slots" in columns(engine, "attempts")  # version 4
        assert RUN_LIST_INDEXES <= {i["name"] for i in inspect(engine).get_indexes("runs")}  # version 6
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM attempts WHERE stop_reason IS NOT NULL")).scalar() == 0

        store = Store(engine)
        assert store.status_counts() == {"completed": 2, "failed": 2, "cancelled": 1, "queued": 2}
        bad = store.get_run("legacy@bad")
        assert bad is not None and (bad.status, bad.exit_code, bad.reason, bad.ended_at) == ("failed", 3, "exit code 3", 1_700_000_008.0)
        retried = store.attempts_of("legacy@ok_retried")
        assert [(a.number, a.exit_code, a.end_reason, a.stop_reason) for a in retried] == [(1, 1, "exited", None), (2, 0, "exited", None)]
        assert [e.kind for e in store.events_of("legacy@ok_first")] == ["defined", "assigned", "running", "completed"]
        assert {n.name: n.state for n in store.all_nodes()} == {"local-000000001-1": "gone", "local-000000002-2": "gone"}
        assert {r.global_id for r in store.active_runs()} == {"legacy@interrupted", "legacy@waiting"}

        # The upgraded store takes writes of the new column through the ordinary path.
        batch = WriteBatch()
        batch.new_attempts.append({"global_id": "legacy@waiting", "number": 1, "node": None, "published_at": 1.0, "stop_reason": "cancel",
                                   "slot": 2, "slots": "[2, 3]"})
        store.commit(batch)
        assert [(a.number, a.stop_reason, a.slot, a.slots) for a in store.attempts_of("legacy@waiting")] == [(1, "cancel", 2, "[2, 3]")]
    finally:
        engine.dispose()


RUN_LIST_INDEXES = {"ix_runs_experiment_run_id", "ix_runs_status_experiment_run_id", "ix_runs_cluster_status", "ix_runs_node_cluster_status"}


def test_v5_store_gets_the_runs_list_indexes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Version 6 only adds indexes: a version-5 store keeps its rows, and the runs list's
    filtered pages read them (the plan names the index, not a scan of every run)."""
    db = load_v1(tmp_path)
    plain = sqlalchemy.create_engine(f"sqlite:///{db}")
    try:
        assert prepare_schema(plain, migrations=MIGRATIONS[:4]) == 5  # the store a version-5 release leaves
        assert not RUN_LIST_INDEXES & {i["name"] for i in inspect(plain).get_indexes("runs")}
        v5_cols = {t: columns(plain, t) for t in TABLES}
        before = snapshot(plain, v5_cols)
    finally:
        plain.dispose()
    with caplog.at_level(logging.INFO, logger="juqueue.store.migrations"):
        engine = make_engine(None, tmp_path)
    assert any("schema version 6: add the runs list's indexes" in r.getMessage() for r in caplog.records)
    try:
        assert version_row(engine) == (1, LATEST_VERSION, __version__)
        assert RUN_LIST_INDEXES <= {i["name"] for i in inspect(engine).get_indexes("runs")}
        assert snapshot(engine, v5_cols) == before
        with engine.connect() as conn:
            plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT global_id FROM runs WHERE status = 'failed' AND experiment = 'legacy' "
                "ORDER BY experiment, run_id LIMIT 100"))
        assert "ix_runs_status_experiment_run_id" in plan, plan
        store = Store(engine)
        assert [r.global_id for r in store.list_runs(where=RunFilter.of(["failed"]), limit=100)] == ["legacy@after_bad", "legacy@bad"]
        assert store.count_runs(RunFilter.of(["failed"], q="BAD")) == 2
    finally:
        engine.dispose()


def test_v6_store_gets_checkpoints_and_definition_order(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Version 7 adds attempts.last_checkpoint_at and runs.def_order: a version-6 store keeps
    every row, the new columns are NULL, its queued runs start first queued first (then by id)
    and the new columns take writes through the ordinary paths."""
    db = load_v1(tmp_path)
    plain = sqlalchemy.create_engine(f"sqlite:///{db}")
    try:
        assert prepare_schema(plain, migrations=MIGRATIONS[:5]) == 6  # the store a version-6 release leaves
        assert "last_checkpoint_at" not in columns(plain, "attempts") and "def_order" not in columns(plain, "runs")
        v6_cols = {t: columns(plain, t) for t in TABLES}
        before = snapshot(plain, v6_cols)
    finally:
        plain.dispose()
    with caplog.at_level(logging.INFO, logger="juqueue.store.migrations"):
        engine = make_engine(None, tmp_path)
    assert any("schema version 7: add attempts.last_checkpoint_at and runs.def_order" in r.getMessage() for r in caplog.records)
    try:
        assert version_row(engine) == (1, LATEST_VERSION, __version__)
        assert snapshot(engine, v6_cols) == before
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM attempts WHERE last_checkpoint_at IS NOT NULL")).scalar() == 0
            assert conn.execute(text("SELECT count(*) FROM runs WHERE def_order IS NOT NULL")).scalar() == 0
        store = Store(engine)
        from juqueue.controller.records import RunState

        queued = sorted((RunState.from_row(r) for r in store.active_runs() if r.status == "queued"),
                        key=lambda r: r.queue_key())
        # NULL definition order: first queued first, then by id, as before
        assert [r.gid for r in queued] == [r.gid for r in sorted(queued, key=lambda r: (r.queued_at, r.gid))]
        batch = WriteBatch()
        batch.attempts[("legacy@ok_first", 1)] = {"last_checkpoint_at": 1_700_000_001.5}
        store.commit(batch)
        assert [a.last_checkpoint_at for a in store.attempts_of("legacy@ok_first")] == [1_700_000_001.5]
    finally:
        engine.dispose()


def test_upgraded_store_has_the_schema_of_a_fresh_one(tmp_path: Path) -> None:
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    load_v1(tmp_path / "old")
    upgraded, fresh = make_engine(None, tmp_path / "old"), make_engine(None, tmp_path / "new")
    try:
        assert schema(upgraded) == schema(fresh)
    finally:
        upgraded.dispose()
        fresh.dispose()


def test_fresh_store_is_created_at_the_latest_version(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine = make_engine(None, tmp_path)
    try:
        assert WorkDir(tmp_path).db_file.exists()
        assert version_row(engine) == (1, LATEST_VERSION, __version__)
        assert set(TABLES) | {"schema_version", "usage_samples", "usage_totals"} == set(inspect(engine).get_table_names())
        assert "stop_reason" in columns(engine, "attempts")
    finally:
        engine.dispose()
    with caplog.at_level(logging.INFO, logger="juqueue.store.migrations"):
        engine = make_engine(None, tmp_path)  # reopening an up-to-date store changes nothing
    try:
        assert version_row(engine) == (1, LATEST_VERSION, __version__)
        assert not [r for r in caplog.records if "migrating" in r.getMessage() or "created" in r.getMessage()]
    finally:
        engine.dispose()


def test_newer_store_is_refused_and_left_alone(tmp_path: Path) -> None:
    make_engine(None, tmp_path).dispose()
    db = WorkDir(tmp_path).db_file
    conn = sqlite3.connect(db)
    conn.execute("UPDATE schema_version SET version = 999, written_by = '9.9.9'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreSchemaError) as info:
        make_engine(None, tmp_path)
    message = str(info.value)
    assert "schema version 999" in message and "written by juqueue 9.9.9" in message
    assert f"up to version {LATEST_VERSION}" in message and __version__ in message
    assert "Upgrade juqueue" in message and "another work dir" in message
    assert str(db) in message
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT id, version, written_by FROM schema_version").fetchall() == [(1, 999, "9.9.9")]
    conn.close()


def _failing_step(conn: Connection) -> None:
    """Changes schema and data, then fails: all of it, and the steps before, must roll back."""
    conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN junk VARCHAR")
    conn.exec_driver_sql("UPDATE runs SET status = 'broken'")
    conn.exec_driver_sql("DELETE FROM events")
    raise RuntimeError("boom in step 3")


FAILING = (*MIGRATIONS, Migration(LATEST_VERSION + 1, "a step that fails", _failing_step))


def _full_dump(db: Path) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def test_failing_migration_leaves_the_store_at_its_old_version_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = load_v1(tmp_path)
    before = _full_dump(db)
    monkeypatch.setattr(engine_module, "prepare_schema", functools.partial(prepare_schema, migrations=FAILING))
    with pytest.raises(StoreSchemaError) as info:
        make_engine(None, tmp_path)
    message = str(info.value)
    assert "from schema version 1" in message and "a step that fails" in message and "boom in step 3" in message
    assert "still at version 1" in message
    assert isinstance(info.value.__cause__, RuntimeError)
    assert _full_dump(db) == before  # the v2 step ran too, and was rolled back with the rest
    monkeypatch.undo()
    engine = make_engine(None, tmp_path)  # the real steps still apply afterwards
    try:
        assert store_version(engine) == LATEST_VERSION
    finally:
        engine.dispose()


def test_failing_migration_on_an_up_to_date_store_changes_nothing_either(tmp_path: Path) -> None:
    make_engine(None, tmp_path).dispose()
    db = WorkDir(tmp_path).db_file
    before = _full_dump(db)
    plain = sqlalchemy.create_engine(f"sqlite:///{db}")
    try:
        with pytest.raises(StoreSchemaError, match=f"from schema version {LATEST_VERSION} to {LATEST_VERSION + 1}"):
            prepare_schema(plain, migrations=FAILING)
    finally:
        plain.dispose()
    assert _full_dump(db) == before


def test_migrations_must_be_in_order(tmp_path: Path) -> None:
    plain = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with pytest.raises(RuntimeError, match="one per version"):
            prepare_schema(plain, migrations=(Migration(3, "skips 2", lambda conn: None),))
    finally:
        plain.dispose()


# ---------------------------------------------------------------------------- PostgreSQL
@pytest.fixture
def postgres_db(postgres_databases):
    """A factory of databases of their own on the shared PostgreSQL, all dropped afterwards."""
    return lambda: postgres_databases.new("juqueue_migr")


def build_v1_postgresql(url: str) -> Engine:
    """The version-1 schema as the previous release created it on PostgreSQL, with the fixture's rows."""
    engine = sqlalchemy.create_engine(url)
    ddl = V1_POSTGRESQL_DDL.read_text()
    statements = [s.strip() for s in ddl.split(";") if s.strip() and not all(line.startswith("--") for line in s.strip().splitlines())]
    source = sqlite3.connect(":memory:")
    source.executescript(V1_DUMP.read_text())
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
        meta = sqlalchemy.MetaData()
        meta.reflect(conn)
        for name in TABLES:
            table = meta.tables[name]
            cur = source.execute(f"SELECT * FROM {name}")
            names = [d[0] for d in cur.description]
            rows = [dict(zip(names, row)) for row in cur.fetchall()]
            for row in rows:
                for col in table.columns:
                    if isinstance(col.type, sqlalchemy.Boolean) and row[col.name] is not None:
                        row[col.name] = bool(row[col.name])
            conn.execute(table.insert(), rows)
        for name in ("attempts", "events"):  # rows came with their ids: move the sequences past them
            conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), (SELECT max(id) FROM {name}))")
    source.close()
    return engine


def test_postgresql_v1_store_is_upgraded_with_every_row_intact(postgres_db, tmp_path: Path) -> None:
    old_url, fresh_url = postgres_db(), postgres_db()
    plain = build_v1_postgresql(old_url)
    try:
        assert store_version(plain) == 1 and version_row(plain) is None
        v1_cols = {t: columns(plain, t) for t in TABLES}
        before = snapshot(plain, v1_cols)
        assert {t: len(rows) for t, rows in before.items()} == V1_COUNTS
    finally:
        plain.dispose()

    engine = make_engine(old_url, tmp_path)
    fresh = make_engine(fresh_url, tmp_path)
    try:
        assert version_row(engine) == (1, LATEST_VERSION, __version__)
        assert snapshot(engine, v1_cols) == before
        assert schema(engine) == schema(fresh)
        store = Store(engine)
        assert store.status_counts() == {"completed": 2, "failed": 2, "cancelled": 1, "queued": 2}
        batch = WriteBatch()
        batch.new_attempts.append({"global_id": "legacy@waiting", "number": 1, "node": None, "published_at": 1.0, "stop_reason": "drain"})
        batch.event("legacy@waiting", "assigned", 1, None, None, 2.0)
        store.commit(batch)
        assert [(a.number, a.stop_reason) for a in store.attempts_of("legacy@waiting")] == [(1, "drain")]
        assert len(store.events_of("legacy@waiting")) == 2
    finally:
        engine.dispose()
        fresh.dispose()
    engine = make_engine(old_url, tmp_path)  # reopening is a no-op
    try:
        assert version_row(engine) == (1, LATEST_VERSION, __version__)
    finally:
        engine.dispose()


def test_postgresql_failed_upgrade_rolls_back_and_newer_is_refused(postgres_db, tmp_path: Path) -> None:
    url = postgres_db()
    plain = build_v1_postgresql(url)
    try:
        v1_cols = {t: columns(plain, t) for t in TABLES}
        before, before_schema = snapshot(plain, v1_cols), schema(plain)
        with pytest.raises(StoreSchemaError, match="boom in step 3"):
            prepare_schema(plain, migrations=FAILING)
        assert version_row(plain) is None and store_version(plain) == 1
        assert schema(plain) == before_schema and snapshot(plain, v1_cols) == before

        assert prepare_schema(plain) == LATEST_VERSION
        with plain.begin() as conn:
            conn.exec_driver_sql("UPDATE schema_version SET version = 999")
        with pytest.raises(StoreSchemaError, match="schema version 999.*up to version") as info:
            make_engine(url, tmp_path)
        assert "Upgrade juqueue" in str(info.value)
        assert store_version(plain) == 999
    finally:
        plain.dispose()


def test_read_version_of_an_empty_database_is_none(tmp_path: Path) -> None:
    plain = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        assert store_version(plain) is None
        assert migrations.latest_version(()) == 1
    finally:
        plain.dispose()


def test_v6_store_gets_the_run_duration_from_its_definitions(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Version 9 copies each run's `duration` out of its stored definition into `runs.duration`
    (NULL without one, or when the JSON is not a definition) and indexes it; every row stays."""
    db = load_v1(tmp_path)
    plain = sqlalchemy.create_engine(f"sqlite:///{db}")
    try:
        assert prepare_schema(plain, migrations=MIGRATIONS[:5]) == 6  # the store a version-6 release leaves
        with plain.begin() as conn:
            conn.execute(text("UPDATE runs SET spec_json = :spec WHERE global_id = 'legacy@waiting'"),
                         {"spec": '{"cmd": ["true"], "duration": 90.5}'})
            conn.execute(text("UPDATE runs SET spec_json = 'not json' WHERE global_id = 'legacy@bad'"))
        v6_cols = {t: columns(plain, t) for t in TABLES}
        before = snapshot(plain, v6_cols)
    finally:
        plain.dispose()
    with caplog.at_level(logging.INFO, logger="juqueue.store.migrations"):
        engine = make_engine(None, tmp_path)
    assert any("schema version 9: add runs.duration" in r.getMessage() for r in caplog.records)
    try:
        assert version_row(engine) == (1, LATEST_VERSION, __version__)
        assert "ix_runs_status_experiment_duration" in {i["name"] for i in inspect(engine).get_indexes("runs")}
        assert snapshot(engine, v6_cols) == before
        with engine.connect() as conn:
            durations = dict(conn.execute(text("SELECT global_id, duration FROM runs")).all())
        assert durations.pop("legacy@waiting") == 90.5
        assert set(durations.values()) == {None}  # no duration in their definitions, or not JSON at all
        work = Store(engine).remaining_work(2_000_000_000.0)
        assert work["legacy"].runs == 2 and work["legacy"].seconds is None  # one without a duration, no median
    finally:
        engine.dispose()
