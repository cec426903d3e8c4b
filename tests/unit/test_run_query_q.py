"""The runs list's `q` (a substring of the run id, case ignored, no wildcards) on SQLite and
PostgreSQL: LIKE on SQLite (which ignores ASCII case, as its lower() does), ILIKE on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from controller_fakes import run_specs
from juqueue.definitions.models import LoadResult
from juqueue.store.engine import make_engine
from juqueue.store.run_query import RunFilter
from juqueue.store.store import Store

IDS = ["Alpha_1", "alpha-1", "b%2", "c/3", "delta"]


def _check(store: Store) -> None:
    runs = [spec.model_copy(update={"id": rid}) for spec, rid in zip(run_specs(len(IDS), "c"), IDS)]
    store.apply_definitions(LoadResult(runs=runs, experiments={"exp": "exp.yaml"}), now=1.0)

    def ids(q: str, *statuses: str) -> list[str]:
        got = [r.run_id for r in store.list_runs(RunFilter.of(list(statuses), q=q), limit=100)]
        assert store.count_runs(RunFilter.of(list(statuses), q=q)) == len(got)
        return got

    assert ids("ALPHA") == ["Alpha_1", "alpha-1"]  # case ignored
    assert ids("a_1") == ["Alpha_1"]  # `_` is itself, not any one character
    assert ids("%") == ["b%2"] and ids("/") == ["c/3"] and ids("c/") == ["c/3"]
    assert ids("elt", "queued") == ["delta"] and ids("elt", "failed") == []


def test_q_on_sqlite(tmp_path: Path) -> None:
    _check(Store(make_engine(None, tmp_path)))


def test_q_on_postgresql(postgres_databases, tmp_path: Path) -> None:
    engine = make_engine(postgres_databases.new("juqueue_q"), tmp_path)
    try:
        _check(Store(engine))
    finally:
        engine.dispose()
