"""What each experiment still has to run (`Store.remaining_work`, the basis of `/api/experiments`'
projection) and runs per experiment and status, on SQLite and PostgreSQL: a run's own `duration`
read from its stored definition by SQL, else its experiment's median of completed run times."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller_fakes import run_specs
from juqueue.definitions.models import LoadResult
from juqueue.store.engine import make_engine
from juqueue.store.store import Store, WriteBatch

NOW = 1_000_000.0


def _fill(store: Store) -> None:
    """timed: 3 queued of 100 s, 1 running of 100 s started 40 s ago, 1 completed.
    median: 2 queued and 1 running without a duration, 3 completed of 10, 20 and 60 s.
    unknown: 1 queued without a duration, no completed run."""
    runs = (run_specs(5, "c", experiment="timed", duration=100) + run_specs(6, "c", experiment="median")
            + run_specs(1, "c", experiment="unknown"))
    store.apply_definitions(LoadResult(runs=runs, experiments={e: f"{e}.yaml" for e in ("timed", "median", "unknown")}),
                            now=NOW - 1000)
    batch = WriteBatch()
    batch.runs["timed@r3"] = {"status": "running", "started_at": NOW - 40}
    batch.runs["timed@r4"] = {"status": "completed", "started_at": NOW - 500, "ended_at": NOW - 400}
    for i, took in zip((3, 4, 5), (10, 20, 60)):
        batch.runs[f"median@r{i}"] = {"status": "completed", "started_at": NOW - 900, "ended_at": NOW - 900 + took}
    batch.runs["median@r2"] = {"status": "running", "started_at": NOW - 5}
    store.commit(batch)


def _check(store: Store) -> None:
    _fill(store)
    work = store.remaining_work(NOW)
    assert set(work) == {"timed", "median", "unknown"}
    assert work["timed"].runs == 4 and work["timed"].seconds == pytest.approx(3 * 100 + 60)
    assert work["median"].runs == 3 and work["median"].seconds == pytest.approx(2 * 20 + 15)  # median 20; 5 s done
    assert work["unknown"].seconds is None and work["unknown"].cluster == "c"
    counts = store.experiment_status_counts()
    assert counts["timed"] == {"queued": 3, "running": 1, "completed": 1}
    assert counts["median"] == {"queued": 2, "running": 1, "completed": 3}


def test_remaining_work_on_sqlite(tmp_path: Path) -> None:
    _check(Store(make_engine(None, tmp_path)))


def test_remaining_work_on_postgresql(postgres_databases, tmp_path: Path) -> None:
    engine = make_engine(postgres_databases.new("juqueue_exp"), tmp_path)
    try:
        _check(Store(engine))
    finally:
        engine.dispose()


def test_definitions_fill_the_duration_column_and_a_redefinition_changes_it(tmp_path: Path) -> None:
    store = Store(make_engine(None, tmp_path))
    load = lambda d: LoadResult(runs=run_specs(2, "c", experiment="e", **({"duration": d} if d else {})),  # noqa: E731
                                experiments={"e": "e.yaml"})
    store.apply_definitions(load(30), now=NOW)
    assert {r.global_id: r.duration for r in store.list_runs()} == {"e@r0": 30.0, "e@r1": 30.0}
    store.apply_definitions(load(None), now=NOW)
    assert {r.duration for r in store.list_runs()} == {None}
    assert store.remaining_work(NOW)["e"].seconds is None
