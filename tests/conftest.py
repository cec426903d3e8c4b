"""Shared by every test: the integration marker and databases of a test's own on PostgreSQL."""

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The test machines' PostgreSQL (trust auth, database `test`); tests make databases of their own there.
POSTGRES_ADMIN = os.environ.get("JUQUEUE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
    # The longest first: a parallel run (pytest-xdist --dist worksteal) then never ends waiting
    # on one long test started late. Stable, so the order within a rank stays the files' own.
    items.sort(key=_start_rank)


def _start_rank(item) -> tuple[int, float]:
    """Slow tests by their expected seconds (`@pytest.mark.slow(seconds)`), then the other
    integration tests, then the unit tests."""
    slow = item.get_closest_marker("slow")
    if slow:
        return 0, -float(slow.args[0] if slow.args else 30)
    return (1 if item.get_closest_marker("integration") else 2), 0.0


@dataclass
class PostgresDatabases:
    """`new(prefix)` makes a database (its URL); all are dropped when the test ends."""

    admin: object  # a psycopg connection in autocommit to POSTGRES_ADMIN
    made: list[str] = field(default_factory=list)

    def new(self, prefix: str = "juqueue_test") -> str:
        name = f"{prefix}_{secrets.token_hex(4)}"
        self.admin.execute(f"CREATE DATABASE {name}")  # type: ignore[attr-defined]
        self.made.append(name)
        return f"{POSTGRES_ADMIN.rsplit('/', 1)[0]}/{name}"


@pytest.fixture
def postgres_databases():
    """Skipped without PostgreSQL, except under CI=true, where that is a failure."""
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(POSTGRES_ADMIN, autocommit=True)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"no PostgreSQL at {POSTGRES_ADMIN}: {exc}")
    dbs = PostgresDatabases(admin)
    try:
        yield dbs
    finally:
        for name in dbs.made:
            admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()
