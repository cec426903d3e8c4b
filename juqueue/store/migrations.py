"""The store's schema version and the steps that bring an older store up to date.

`create_all` creates missing tables but never changes existing ones, so a new column would
break every store written by an earlier release. Instead the store records its schema
version in the one-row table `schema_version` (the same on SQLite and PostgreSQL), and
`prepare_schema` runs when the store is opened:

- an empty database gets today's tables and the latest version directly;
- an older store runs every missing step, and the version bump, in ONE transaction: an
  error rolls all of it back and the store stays as it was;
- a store newer than this code is refused (StoreSchemaError), never touched.

Stores written before versions existed have the tables but no version record: they are
version 1. To change the schema: change tables.py, and append one step to MIGRATIONS that
brings a store of the previous version to the new one with plain SQL that works on both
SQLite and PostgreSQL (ALTER TABLE ... ADD COLUMN, CREATE INDEX; what SQLite cannot ALTER
needs a table rebuild, written per dialect). The step must leave the store exactly as a
fresh store of the new version would be; tests/unit/test_store_migrations.py checks that.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, inspect, select, text, update
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from juqueue.errors import StoreSchemaError
from juqueue.store import tables  # noqa: F401  (importing registers the tables)
from juqueue.version import __version__

log = logging.getLogger(__name__)

FIRST_VERSION = 1  # the schema of the releases before versions were recorded
_PG_LOCK_KEY = 0x4A51_5343_4845_4D41  # "JQSCHEMA": the advisory lock two servers opening one database take in turn

# Kept out of SQLModel.metadata: it describes the store, it is not part of any version's tables.
_version_metadata = MetaData()
schema_version_table = Table(
    "schema_version",
    _version_metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1: one row
    Column("version", Integer, nullable=False),
    Column("written_by", String, nullable=True),  # the juqueue release that last set the version
)


@dataclass(frozen=True)
class Migration:
    """One step: brings a store of version `version - 1` to `version`."""

    version: int
    description: str
    apply: Callable[[Connection], None]


def _v2_attempt_stop_reason(conn: Connection) -> None:
    """attempts.stop_reason: why JuQueue stopped an attempt (a StopReason value), NULL for older attempts."""
    conn.exec_driver_sql("ALTER TABLE attempts ADD COLUMN stop_reason VARCHAR")


def _v3_node_billing(conn: Connection) -> None:
    """nodes.billed_from/billed_until/billed_estimated and the usage_samples series."""
    conn.exec_driver_sql("ALTER TABLE nodes ADD COLUMN billed_from FLOAT")
    conn.exec_driver_sql("ALTER TABLE nodes ADD COLUMN billed_until FLOAT")
    conn.exec_driver_sql("ALTER TABLE nodes ADD COLUMN billed_estimated BOOLEAN NOT NULL DEFAULT FALSE")
    frozen = MetaData()  # the table as version 3 defines it, whatever later versions make of it
    samples = Table(
        "usage_samples", frozen,
        Column("id", Integer, primary_key=True),
        Column("cluster", String, nullable=False, index=True),
        Column("ts", Float, nullable=False, index=True),
        Column("nodes", Integer, nullable=False),
        Column("slots_busy", Integer, nullable=False),
    )
    samples.create(conn)


def _v4_attempt_slots(conn: Connection) -> None:
    """attempts.slots: the JSON list of an attempt's slot indices (a run may hold k slots), NULL before."""
    conn.exec_driver_sql("ALTER TABLE attempts ADD COLUMN slots VARCHAR")


def _v5_node_replacement(conn: Connection) -> None:
    """nodes.replaces/protected_until: a replacement job started before another node's wall-time warning."""
    conn.exec_driver_sql("ALTER TABLE nodes ADD COLUMN replaces VARCHAR")
    conn.exec_driver_sql("ALTER TABLE nodes ADD COLUMN protected_until FLOAT")


def _v6_run_list_indexes(conn: Connection) -> None:
    """Indexes for the runs list's filters (status, experiment, cluster, node) and its default order."""
    conn.exec_driver_sql("CREATE INDEX ix_runs_experiment_run_id ON runs (experiment, run_id, global_id)")
    conn.exec_driver_sql("CREATE INDEX ix_runs_status_experiment_run_id ON runs (status, experiment, run_id, global_id)")
    conn.exec_driver_sql("CREATE INDEX ix_runs_cluster_status ON runs (cluster, status)")
    conn.exec_driver_sql("CREATE INDEX ix_runs_node_cluster_status ON runs (node, cluster, status)")


def _v7_checkpoints_and_queue_order(conn: Connection) -> None:
    """attempts.last_checkpoint_at (reported checkpoints) and runs.def_order (queue order), NULL before."""
    conn.exec_driver_sql("ALTER TABLE attempts ADD COLUMN last_checkpoint_at FLOAT")
    conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN def_order INTEGER")


def _v8_usage_totals(conn: Connection) -> None:
    """usage_totals (ended attempts summed per node and experiment, filled from the attempts
    there are) and the index on attempts.ended_at (the live attempts are read by it)."""
    from juqueue.store.usage_totals import fill_from_attempts

    frozen = MetaData()  # the table as version 8 defines it, whatever later versions make of it
    Table(
        "usage_totals", frozen,
        Column("node", String, primary_key=True),
        Column("experiment", String, primary_key=True),
        Column("busy_s", Float, nullable=False),
        Column("lost_s", Float, nullable=False),
        Column("attempts", Integer, nullable=False),
    ).create(conn)
    conn.exec_driver_sql("CREATE INDEX ix_attempts_ended_at ON attempts (ended_at)")
    fill_from_attempts(conn)


def _v9_run_duration(conn: Connection) -> None:
    """runs.duration: each run's expected run time, copied out of its stored definition (so the
    experiments' projection reads a column, not every queued run's JSON), and its index."""
    conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN duration FLOAT")
    rows = conn.exec_driver_sql("SELECT global_id, spec_json FROM runs").all()
    values = [{"gid": gid, "duration": d} for gid, spec in rows if (d := spec_duration(spec)) is not None]
    if values:
        conn.execute(text("UPDATE runs SET duration = :duration WHERE global_id = :gid"), values)
    conn.exec_driver_sql("CREATE INDEX ix_runs_status_experiment_duration ON runs (status, experiment, duration, cluster)")


def spec_duration(spec_json: str | None) -> float | None:
    """The `duration` of a stored definition (seconds), or None (none, or JSON that is not a definition)."""
    try:
        value = json.loads(spec_json or "{}").get("duration")
        return float(value) if value is not None else None
    except (ValueError, TypeError, AttributeError):
        return None


MIGRATIONS: tuple[Migration, ...] = (
    Migration(2, "add attempts.stop_reason", _v2_attempt_stop_reason),
    Migration(3, "add node billing times and the usage_samples series", _v3_node_billing),
    Migration(4, "add attempts.slots", _v4_attempt_slots),
    Migration(5, "add nodes.replaces and nodes.protected_until", _v5_node_replacement),
    Migration(6, "add the runs list's indexes", _v6_run_list_indexes),
    Migration(7, "add attempts.last_checkpoint_at and runs.def_order", _v7_checkpoints_and_queue_order),
    Migration(8, "add usage_totals, filled from the attempts, and the index on attempts.ended_at", _v8_usage_totals),
    Migration(9, "add runs.duration", _v9_run_duration),
)


def latest_version(migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """The version this code writes: one past the last step."""
    return FIRST_VERSION + len(migrations)


LATEST_VERSION = latest_version()


def _check_order(migrations: Sequence[Migration]) -> None:
    expected = list(range(FIRST_VERSION + 1, FIRST_VERSION + 1 + len(migrations)))
    if [m.version for m in migrations] != expected:
        raise RuntimeError(f"migrations must be one per version, in order: {[m.version for m in migrations]} != {expected}")


_check_order(MIGRATIONS)


def read_version(conn: Connection) -> int | None:
    """The store's schema version; None for a database without JuQueue's tables."""
    names = set(inspect(conn).get_table_names())
    if schema_version_table.name in names:
        version = conn.execute(select(schema_version_table.c.version).where(schema_version_table.c.id == 1)).scalar()
        if version is not None:
            return int(version)
    if names & set(SQLModel.metadata.tables):
        return FIRST_VERSION  # written before versions were recorded
    return None


def _written_by(conn: Connection) -> str | None:
    row = conn.execute(select(schema_version_table.c.written_by).where(schema_version_table.c.id == 1)).first()
    return row[0] if row else None


def _write_version(conn: Connection, version: int) -> None:
    if schema_version_table.name not in inspect(conn).get_table_names():
        schema_version_table.create(conn)
        conn.execute(schema_version_table.insert().values(id=1, version=version, written_by=__version__))
    else:
        # update-or-insert: a table left without its row still ends up with exactly one
        done = conn.execute(update(schema_version_table).where(schema_version_table.c.id == 1)
                            .values(version=version, written_by=__version__)).rowcount
        if not done:
            conn.execute(schema_version_table.insert().values(id=1, version=version, written_by=__version__))


@contextmanager
def _one_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that also covers DDL and holds the store's write lock from the start.

    Python's sqlite3 module commits DDL on its own unless it is in autocommit mode, so on
    SQLite the transaction is opened by hand (BEGIN IMMEDIATE also keeps a second process
    out until the upgrade is done). PostgreSQL's DDL is transactional as it is; an advisory
    lock serialises two servers opening the same database.
    """
    if engine.dialect.name == "sqlite":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.connection.dbapi_connection.in_transaction:  # some errors end it already
                    conn.exec_driver_sql("ROLLBACK")
                raise
            conn.exec_driver_sql("COMMIT")
    else:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
            yield conn


def prepare_schema(engine: Engine, where: str | None = None, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the store to the latest version (create, upgrade or refuse); return that version.

    `where` names the store in messages (default: its URL without password); `migrations`
    is the list of steps, replaceable so tests can add a failing one.
    """
    _check_order(migrations)
    latest = latest_version(migrations)
    where = where or engine.url.render_as_string(hide_password=True)
    with _one_transaction(engine) as conn:
        found = read_version(conn)
        if found is None:
            SQLModel.metadata.create_all(conn)
            _write_version(conn, latest)
            log.info("store: created %s at schema version %d", where, latest)
            return latest
        if found > latest:
            written_by = _written_by(conn)
            raise StoreSchemaError(
                f"the store {where} has schema version {found}"
                + (f" (written by juqueue {written_by})" if written_by else "")
                + f", newer than this juqueue {__version__} supports (up to version {latest}). "
                "Upgrade juqueue to the release that wrote it, or use another work dir (or --db-url) with this one; "
                "the store was not changed."
            )
        if found == latest:
            return latest
        for step in migrations[found - FIRST_VERSION:]:
            log.info("store: migrating %s to schema version %d: %s", where, step.version, step.description)
            try:
                step.apply(conn)
            except Exception as exc:
                raise StoreSchemaError(
                    f"upgrading the store {where} from schema version {found} to {latest} failed at version "
                    f"{step.version} ({step.description}): {exc}. Nothing was changed: the store is still at version {found}."
                ) from exc
        _write_version(conn, latest)
    log.info("store: upgraded %s from schema version %d to %d", where, found, latest)
    return latest
