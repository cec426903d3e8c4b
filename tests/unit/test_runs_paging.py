"""The runs list paged and filtered, and run verbs on a filter, over a real store.

1,000 runs in 3 statuses on 2 clusters (2 experiments, 3 nodes): every combination of the
filters returns exactly the rows a plain Python filter picks, in the default order, with the
total in X-Total-Count; pages stitch together; sorts, bad input (422 naming it), the CLI paging
through everything, and selections by filter (one store query, chunked controller calls,
reasons for skipped runs, `matched`).
"""

from __future__ import annotations

import itertools
import json
import warnings

import pytest
from sqlalchemy import insert
from typer.testing import CliRunner

from juqueue import client as client_mod
from juqueue.api import selection
from juqueue.api.app import create_app
from juqueue.api.context import AppContext
from juqueue.cli import app as cli_app
from juqueue.paths import WorkDir
from juqueue.store.engine import make_engine
from juqueue.store.run_query import RunFilter, RunQueryError
from juqueue.store.store import Store
from juqueue.store.tables import RunRow

with warnings.catch_warnings():  # starlette asks for `httpx2`; the dev venv has httpx
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

TOKEN = "tok"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
STATUSES = ("queued", "completed", "failed")
N = 1000


def _runs() -> list[dict]:
    out = []
    for i in range(N):
        status = STATUSES[i % 3]
        started = status != "queued"
        out.append({"global_id": f"e{i % 2 + 1}@r{i:04d}", "experiment": f"e{i % 2 + 1}", "run_id": f"r{i:04d}",
                    "cluster": "c1" if i % 5 < 3 else "c2", "status": status, "attempt": 1 if started else 0,
                    "node": f"n{i % 3 + 1}" if started and i % 7 else None, "queued_at": float(i),
                    "started_at": float(i) + 0.5 if started else None,
                    "ended_at": float(N - i) if started else None, "exit_code": (0 if status == "completed" else 3) if started else None})
    return out


RUNS = _runs()


class ChunkingController:
    """Records each call's chunk; cancels anything not final, requeues failed ones."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.calls: list[int] = []

    def call(self, fn):
        return fn()

    def _act(self, gids: list[str], statuses: set[str]) -> list[str]:
        self.calls.append(len(gids))
        have = self.store.statuses(gids)
        return [g for g in gids if have[g].value in statuses]

    def cancel_runs(self, gids: list[str]) -> list[str]:
        return self._act(gids, {"queued", "held", "assigned", "running"})

    def requeue_runs(self, gids: list[str]) -> list[str]:
        return self._act(gids, {"failed", "cancelled"})


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("paging")
    engine = make_engine(None, tmp)
    store = Store(engine)
    with engine.begin() as conn:
        conn.execute(insert(RunRow), RUNS)
    work = WorkDir(tmp)
    work.ensure_state_dir()
    work.token_file.write_text(TOKEN + "\n")
    work.server_file.write_text(json.dumps({"url": "http://testserver", "port": 1, "pid": 1}))
    controller = ChunkingController(store)
    ctx = AppContext(store=store, controller=controller, token=TOKEN, work=work, clusters={}, port=1,  # type: ignore[arg-type]
                     reload=dict, request_stop=lambda c: {})
    with TestClient(create_app(ctx)) as http:
        yield store, http, controller, tmp
    engine.dispose()


def _expected(statuses=(), experiment=None, cluster=None, node=None, q=None) -> list[str]:
    rows = [r for r in RUNS if (not statuses or r["status"] in statuses) and (experiment is None or r["experiment"] == experiment)
            and (cluster is None or r["cluster"] == cluster) and (node is None or r["node"] == node)
            and (q is None or q.lower() in r["run_id"].lower())]
    return [r["global_id"] for r in sorted(rows, key=lambda r: (r["experiment"], r["run_id"]))]


STATUS_SETS = [()] + [c for k in (1, 2, 3) for c in itertools.combinations(STATUSES, k)]


def test_every_filter_combination_returns_the_right_rows_and_total(world):
    store, http, _, _ = world
    checked = 0
    for statuses, experiment, cluster, node, q in itertools.product(
            STATUS_SETS, (None, "e1", "ghost"), (None, "c1", "c2"), (None, "n1"), (None, "01")):
        params = {"status": list(statuses), "experiment": experiment, "cluster": cluster, "node": node, "q": q, "limit": 1000}
        resp = http.get("/api/runs", params={k: v for k, v in params.items() if v is not None}, headers=AUTH)
        assert resp.status_code == 200, resp.text
        want = _expected(statuses, experiment, cluster, node, q)
        assert [r["global_id"] for r in resp.json()] == want, params
        assert int(resp.headers["X-Total-Count"]) == len(want), params
        where = RunFilter.of(list(statuses), experiment, cluster, node, q)
        assert store.run_ids(where) == want and store.count_runs(where) == len(want)
        checked += 1
    assert checked == len(STATUS_SETS) * 3 * 3 * 2 * 2


def test_default_page_offset_and_pages_stitch_together(world):
    _, http, _, _ = world
    first = http.get("/api/runs", headers=AUTH)
    assert len(first.json()) == 100 and first.headers["X-Total-Count"] == str(N)  # the default page
    assert [r["global_id"] for r in first.json()] == _expected()[:100]
    want = _expected(("failed", "queued"), cluster="c2")
    got: list[str] = []
    while True:
        resp = http.get("/api/runs", params={"status": ["failed", "queued"], "cluster": "c2", "offset": len(got), "limit": 37},
                        headers=AUTH)
        assert int(resp.headers["X-Total-Count"]) == len(want)
        got += [r["global_id"] for r in resp.json()]
        if len(resp.json()) < 37:
            break
    assert got == want
    past = http.get("/api/runs", params={"offset": 5000}, headers=AUTH)
    assert past.json() == [] and past.headers["X-Total-Count"] == str(N)
    assert http.get("/api/runs", params={"q": "R00"}, headers=AUTH).headers["X-Total-Count"] == "100"  # case-insensitive
    assert http.get("/api/runs", params={"q": "%"}, headers=AUTH).headers["X-Total-Count"] == "0"  # no wildcards


def test_sort_by_a_field_either_way_nulls_last(world):
    _, http, _, _ = world

    def ids(sort: str, **params) -> list[str]:
        return [r["global_id"] for r in http.get("/api/runs", params={"sort": sort, "limit": 1000, **params}, headers=AUTH).json()]

    by_end = sorted(RUNS, key=lambda r: (r["ended_at"] is None, -(r["ended_at"] or 0), r["experiment"], r["run_id"]))
    assert ids("-ended_at") == [r["global_id"] for r in by_end]
    by_node = sorted(RUNS, key=lambda r: (r["node"] is None, r["node"] or "", r["experiment"], r["run_id"]))
    assert ids("node") == [r["global_id"] for r in by_node]
    assert ids("-id", experiment="e2")[:3] == ["e2@r0999", "e2@r0997", "e2@r0995"]
    assert ids("global_id", status="completed")[:2] == ["e1@r0004", "e1@r0010"]


def test_bad_limit_sort_and_status_are_422_naming_them(world):
    _, http, _, _ = world
    over = http.get("/api/runs", params={"limit": 1001}, headers=AUTH)
    assert over.status_code == 422 and "limit 1001" in over.json()["detail"] and "1000" in over.json()["detail"]
    assert http.get("/api/runs", params={"limit": 1000}, headers=AUTH).status_code == 200
    sort = http.get("/api/runs", params={"sort": "-colour"}, headers=AUTH)
    assert sort.status_code == 422 and "'colour'" in sort.json()["detail"] and "ended_at" in sort.json()["detail"]
    status = http.get("/api/runs", params={"status": ["failed", "bogus"]}, headers=AUTH)
    assert status.status_code == 422 and "'bogus'" in status.json()["detail"] and "allowed: held" in status.json()["detail"]
    assert http.get("/api/runs", params={"offset": -1}, headers=AUTH).status_code == 422
    with pytest.raises(RunQueryError, match="'nope'"):
        RunFilter.of(["nope"])


def test_cli_runs_pages_through_everything(world, monkeypatch, tmp_path):
    _, http, _, work = world
    requests: list[str] = []

    class Client(client_mod.ApiClient):
        def __init__(self, url, token, timeout=30.0, http_=None):
            super().__init__(url, token, timeout, http=http)

        def response(self, method, path, **kw):
            requests.append(str(kw.get("params")))
            return super().response(method, path, **kw)

        def close(self) -> None:  # shared by the test
            pass

    monkeypatch.setattr(client_mod, "ApiClient", Client)
    monkeypatch.setattr(client_mod, "PAGE_SIZE", 300)
    monkeypatch.chdir(tmp_path)
    for var in ("JUQUEUE_URL", "JUQUEUE_TOKEN", "JUQUEUE_WORK_DIR"):
        monkeypatch.delenv(var, raising=False)
    runner = CliRunner()

    def listed(*args: str) -> list[str]:
        result = runner.invoke(cli_app, ["runs", "--json", "--work-dir", str(work), *args])
        assert result.exit_code == 0, result.output
        return [r["global_id"] for r in json.loads(result.stdout)]

    assert listed() == _expected() and len(requests) == 4  # 1,000 runs, pages of 300
    assert listed("--limit", "50", "--offset", "990") == _expected()[990:]
    assert listed("--limit", "650", "--offset", "10") == _expected()[10:660]
    assert listed("-s", "failed", "--status", "queued", "--cluster", "c1", "--node", "n2", "-q", "9") \
        == _expected(("failed", "queued"), cluster="c1", node="n2", q="9")
    assert listed("-e", "e2", "--sort=-id", "--limit", "2") == ["e2@r0999", "e2@r0997"]
    bad = runner.invoke(cli_app, ["runs", "--sort", "colour", "--work-dir", str(work)])
    assert bad.exit_code == 2 and "unknown sort field 'colour'" in bad.stderr


def test_selection_by_filter_in_chunks_with_reasons(world, monkeypatch):
    store, http, controller, _ = world
    monkeypatch.setattr(selection, "CHUNK", 100)
    controller.calls.clear()
    failed_e1 = _expected(("failed",), "e1")
    out = http.post("/api/runs/requeue", json={"filter": {"statuses": ["failed"], "experiment": "e1"}}, headers=AUTH).json()
    assert out["requeued"] == failed_e1 and out["matched"] == len(failed_e1) == 167
    assert out["skipped"] == [] and out["skipped_reasons"] == {} and out["unknown"] == []
    assert controller.calls == [100, 67]  # two controller calls, not one holding it for all

    # The union of ids, the older experiment/status and a filter; reasons for what was skipped.
    out = http.post("/api/runs/requeue", json={"ids": ["e2@r0001", "x@y"], "status": "completed", "experiment": "e2",
                                               "filter": {"cluster": "c2", "node": "n3", "q": "r01"}}, headers=AUTH).json()
    picked = list(dict.fromkeys(["e2@r0001"] + _expected(("completed",), "e2") + _expected(cluster="c2", node="n3", q="r01")))
    assert out["matched"] == len(picked) and out["unknown"] == ["x@y"]
    assert out["requeued"] == [g for g in picked if next(r for r in RUNS if r["global_id"] == g)["status"] == "failed"]
    assert out["skipped"] == [g for g in picked if g not in out["requeued"]]
    assert out["skipped_reasons"]["e2@r0001"] == "completed: not failed or cancelled"
    assert set(out["skipped_reasons"]) == set(out["skipped"])

    # Nothing matches: 200, empty lists, matched 0. An empty selection or filter: 422.
    none = http.post("/api/runs/cancel", json={"filter": {"statuses": ["held"]}}, headers=AUTH)
    assert none.status_code == 200
    assert none.json() == {"cancelled": [], "unknown": [], "skipped": [], "skipped_reasons": {}, "matched": 0}
    ghost = http.post("/api/runs/cancel", json={"filter": {"experiment": "ghost"}}, headers=AUTH).json()
    assert ghost["matched"] == 0 and ghost["unknown"] == ["ghost"]
    for body in ({}, {"filter": {}}, {"filter": {"statuses": [], "q": ""}}):
        assert http.post("/api/runs/cancel", json=body, headers=AUTH).status_code == 422, body
    bad = http.post("/api/runs/cancel", json={"filter": {"statuses": ["bogus"]}}, headers=AUTH)
    assert bad.status_code == 422 and "'bogus'" in bad.json()["detail"]
