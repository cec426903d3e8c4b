"""The API's token rules and JSON shapes, over a real store and a stand-in controller.

Unit level: the controller only needs `call(fn)` and a few methods with fixed data here;
tests/integration/test_security.py checks the same rules against a running server.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import pytest

from juqueue.api.app import create_app
from juqueue.api.context import AppContext
from juqueue.controller.status_view import StatusView
from juqueue.paths import WorkDir
from juqueue.status import RunStatus
from juqueue.store.engine import make_engine
from juqueue.store.store import Store
from juqueue.store.tables import AttemptRow, EventRow, RunRow

with warnings.catch_warnings():  # starlette asks for `httpx2`; the dev venv has httpx
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

TOKEN = "s3cret-token"
PORT = 51999
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PUBLIC = ["/", "/static/index.html", "/docs", "/redoc", "/openapi.json", "/health"]
RUN_KEYS = {"experiment", "id", "global_id", "status", "attempt", "exit_code", "node", "cluster", "queued_at",
            "started_at", "ended_at", "reason", "defined"}


class FakeController:
    """Only what the routes call, with fixed data."""

    definition_errors = ["bad.yaml: unknown cluster 'nope'"]

    def __init__(self) -> None:
        self.cancelled: list[list[str]] = []

    def call(self, fn):
        return fn()

    def cancel_runs(self, gids: list[str]) -> list[str]:
        self.cancelled.append(list(gids))
        return [g for g in gids if g != "e@done"]

    def requeue_runs(self, gids: list[str]) -> list[str]:
        return [g for g in gids if g == "e@done"]

    def nodes_snapshot(self) -> list[dict]:
        return [{"name": "local-1", "cluster": "local", "type": "local", "state": "up", "slots_used": 1,
                 "slots_total": 2, "runs": ["e@a"], "job_id": None, "reason": None}]

    def cluster_health(self) -> dict:
        return {"local": None}

    def clusters_snapshot(self) -> dict:
        return {"local": {"target_nodes": 1, "scaling_policy": "maximize_running", "consolidation": "aggressive",
                          "consolidating": None, "surplus_reason": None}}

    def status_view(self) -> StatusView:
        return StatusView(self.nodes_snapshot(), self.cluster_health(), list(self.definition_errors), {},
                          self.clusters_snapshot(), {})


@pytest.fixture()
def setup(tmp_path: Path):
    store = Store(make_engine(None, tmp_path))
    now = time.time()
    with store.session() as s:
        s.add(RunRow(global_id="e@a", experiment="e", run_id="a", cluster="local", status="running", attempt=1,
                     node="local-1", queued_at=now, started_at=now))
        s.add(RunRow(global_id="e@done", experiment="e", run_id="done", cluster="local", status="completed",
                     attempt=1, exit_code=0, queued_at=now, started_at=now, ended_at=now))
        s.add(AttemptRow(global_id="e@a", number=1, node="local-1", slot=0, started_at=now))
        s.add(EventRow(global_id="e@a", ts=now, kind="started", attempt=1, node="local-1"))
        s.commit()
    work = WorkDir(tmp_path)
    log = work.attempt_log("e", "a", 1, "out")
    log.parent.mkdir(parents=True)
    log.write_text("hello\nwörld\n")
    from juqueue.definitions.models import ClusterSpec

    controller = FakeController()
    stops: list[bool] = []
    ctx = AppContext(store=store, controller=controller, token=TOKEN, work=work,  # type: ignore[arg-type]
                     clusters=lambda: {"local": ClusterSpec(name="local", type="local", num_slots=2)}, port=PORT,
                     reload=lambda: {"added": [], "updated": [], "undefined": [], "errors": ["x.py: boom"]},
                     request_stop=lambda cancel: stops.append(cancel) or {"stopping": True, "cancel_jobs": cancel},
                     flower_url=None)
    app = create_app(ctx)
    with TestClient(app) as client:
        yield app, client, controller, stops


def _protected(app) -> list[tuple[str, str]]:
    """Every documented operation outside the public paths."""
    return [(method.upper(), path.replace("{global_id}", "e@a"))
            for path, ops in app.openapi()["paths"].items() if path not in PUBLIC for method in ops]


def test_every_non_public_path_needs_the_token(setup):
    app, client, _, _ = setup
    protected = _protected(app)
    assert {("GET", "/api/runs"), ("POST", "/api/reload"), ("POST", "/api/stop"), ("GET", "/api/runs/e@a/logs"),
            ("GET", "/api/events"), ("GET", "/api/events/log")} <= set(protected)
    bad = {"Authorization": "Bearer wrong", "X-JuQueue-Token": "wrong"}
    for method, path in protected + [("GET", "/api/nope"), ("POST", "/api/runs/cancel")]:
        for headers in ({}, bad):
            resp = client.request(method, path, headers=headers, content=b"{not json",
                                  cookies={f"juqueue_token_{PORT}": "wrong"} if headers else None)
            assert resp.status_code == 401, (method, path, resp.text)
            assert "token" in resp.json()["detail"]


def test_header_forms_and_cookie_are_accepted(setup):
    _, client, _, _ = setup
    assert client.get("/api/runs", headers=AUTH).status_code == 200
    assert client.get("/api/runs", headers={"X-JuQueue-Token": TOKEN}).status_code == 200
    client.cookies.set(f"juqueue_token_{PORT}", TOKEN)
    assert client.get("/api/status").status_code == 200
    client.cookies.clear()
    client.cookies.set("juqueue_token_1", TOKEN)  # another port's cookie is not this server's
    assert client.get("/api/status").status_code == 401


def test_token_in_url_becomes_a_strict_httponly_cookie(setup):
    _, client, _, _ = setup
    resp = client.get("/", params={"token": TOKEN}, follow_redirects=False)
    assert resp.status_code in (302, 303, 307) and resp.headers["location"] == "./"  # relative: a proxy's path prefix stays
    cookie = resp.headers["set-cookie"]
    assert cookie.startswith(f"juqueue_token_{PORT}={TOKEN};")
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower() and "Path=/" in cookie
    assert client.get("/api/runs").status_code == 200  # the client kept the cookie
    wrong = client.get("/", params={"token": "wrong"}, follow_redirects=False)
    assert "set-cookie" not in wrong.headers


def test_public_paths_answer_without_token(setup):
    _, client, _, _ = setup
    for path in PUBLIC:
        assert client.get(path).status_code == 200, path
    assert client.get("/health").json()["status"] == "ok"
    assert "<title>JuQueue</title>" in client.get("/").text


def test_runs_shape_filter_and_bad_status(setup):
    _, client, _, _ = setup
    runs = client.get("/api/runs", headers=AUTH).json()
    assert {r["global_id"] for r in runs} == {"e@a", "e@done"}
    for run in runs:
        assert RUN_KEYS <= set(run)
    assert [r["global_id"] for r in client.get("/api/runs?status=completed", headers=AUTH).json()] == ["e@done"]
    bad = client.get("/api/runs?status=bogus", headers=AUTH)
    assert bad.status_code == 422
    for value in RunStatus:
        assert value.value in bad.json()["detail"]


def test_run_detail_logs_and_unknown_ids(setup):
    _, client, _, _ = setup
    run = client.get("/api/runs/e@a", headers=AUTH).json()
    assert run["attempts"][0]["number"] == 1 and run["events"][0]["kind"] == "started"
    missing = client.get("/api/runs/e@nope", headers=AUTH)
    assert missing.status_code == 404 and "e@nope" in missing.json()["detail"]
    logs = client.get("/api/runs/e@a/logs", headers=AUTH).json()
    assert logs["attempt"] == 1 and logs["text"] == "hello\nwörld\n" and logs["next_offset"] == len("hello\nwörld\n".encode())
    more = client.get(f"/api/runs/e@a/logs?offset={logs['next_offset']}", headers=AUTH).json()
    assert more["text"] == "" and more["next_offset"] == logs["next_offset"]
    cut = client.get("/api/runs/e@a/logs?max_bytes=8", headers=AUTH).json()  # 'ö' is split at byte 8
    assert cut["text"] == "hello\nw" and cut["next_offset"] == 7
    assert client.get("/api/runs/e@a/logs?attempt=2", headers=AUTH).status_code == 404
    assert client.get("/api/runs/e@nope/logs", headers=AUTH).status_code == 404
    assert client.get("/api/runs/e@a/logs?stream=err", headers=AUTH).json()["text"] == ""


def test_cancel_requeue_list_unknown_ids(setup):
    _, client, controller, _ = setup
    out = client.post("/api/runs/cancel", json={"ids": ["e@a", "x@y", "e@done"]}, headers=AUTH).json()
    assert out == {"cancelled": ["e@a"], "unknown": ["x@y"], "skipped": ["e@done"],
                   "skipped_reasons": {"e@done": "completed: already final"}, "matched": 2}
    out = client.post("/api/runs/requeue", json={"experiment": "e"}, headers=AUTH).json()
    assert out["requeued"] == ["e@done"] and out["unknown"] == []
    out = client.post("/api/runs/cancel", json={"experiment": "ghost"}, headers=AUTH).json()
    assert out["unknown"] == ["ghost"] and out["cancelled"] == []
    assert client.post("/api/runs/cancel", json={}, headers=AUTH).status_code == 422


def test_status_nodes_and_control(setup):
    _, client, _, stops = setup
    status = client.get("/api/status", headers=AUTH).json()
    assert set(status["counts"]) == {s.value for s in RunStatus}
    assert status["counts"]["running"] == 1 and status["counts"]["queued"] == 0
    (cluster,) = status["clusters"]
    assert cluster["name"] == "local" and cluster["type"] == "local" and cluster["paused_reason"] is None
    assert cluster["nodes"][0]["name"] == "local-1" and cluster["nodes"][0]["runs"] == ["e@a"]
    assert status["definition_errors"] and "version" in status and "flower_url" in status
    nodes = client.get("/api/nodes", headers=AUTH).json()
    assert nodes[0]["name"] == "local-1" and "reason" in nodes[0]
    assert client.post("/api/reload", headers=AUTH).json()["errors"] == ["x.py: boom"]
    assert client.post("/api/stop", json={"cancel_jobs": True}, headers=AUTH).json()["cancel_jobs"] is True
    assert client.post("/api/stop", headers=AUTH).status_code == 200
    assert stops == [True, False]


# CSRF: SameSite=Strict does not separate ports, so a page on another port of the same host sends
# the cookie with its cross-origin POST. Writes need the token in a header or the server's own Origin.

COOKIE = f"juqueue_token_{PORT}"
OWN_ORIGIN = f"http://127.0.0.1:{PORT}"


@pytest.fixture()
def browser_like(setup):
    """A client whose requests reach the server as http://127.0.0.1:PORT (the Host a browser sends)."""
    app, _, controller, stops = setup
    client = TestClient(app, base_url=OWN_ORIGIN)
    client.cookies.set(COOKIE, TOKEN)
    return client, controller, stops


def test_cookie_post_from_another_port_is_refused(browser_like):
    client, controller, stops = browser_like
    for origin in (f"http://127.0.0.1:{PORT + 1}", "http://localhost:%d" % PORT, "null", f"https://127.0.0.1:{PORT}"):
        for path, body in (("/api/stop", None), ("/api/reload", None), ("/api/runs/cancel", {"ids": ["e@a"]})):
            resp = client.post(path, json=body, headers={"Origin": origin})
            assert resp.status_code == 403, (origin, path, resp.text)
            detail = resp.json()["detail"]
            assert "cookie alone is not enough" in detail and "CSRF" in detail and "header" in detail
    assert stops == [] and controller.cancelled == []


def test_cookie_post_without_origin_or_header_is_refused(browser_like):
    client, controller, stops = browser_like
    for path in ("/api/stop", "/api/reload", "/api/runs/requeue", "/api/nope"):
        resp = client.post(path, json={"ids": ["e@done"]})
        assert resp.status_code == 403, (path, resp.text)
        assert "CSRF" in resp.json()["detail"]
    for method in ("PUT", "PATCH", "DELETE"):
        assert client.request(method, "/api/runs").status_code == 403, method
    # A malformed body does not get past the check to a 422 either.
    assert client.post("/api/runs/cancel", content=b"{not json", headers={"Content-Type": "application/json"}).status_code == 403
    assert stops == [] and controller.cancelled == []


def test_cookie_post_with_own_origin_succeeds(browser_like):
    client, controller, stops = browser_like
    own = {"Origin": OWN_ORIGIN}
    assert client.post("/api/reload", headers=own).json()["errors"] == ["x.py: boom"]
    out = client.post("/api/runs/cancel", json={"ids": ["e@a"]}, headers=own)
    assert out.status_code == 200 and out.json()["cancelled"] == ["e@a"]
    assert client.post("/api/stop", headers=own).status_code == 200
    assert stops == [False] and controller.cancelled == [["e@a"]]
    # localhost is the server's own origin only when it is the Host the request was made to.
    via_localhost = TestClient(client.app, base_url=f"http://localhost:{PORT}", cookies={COOKIE: TOKEN})
    assert via_localhost.post("/api/reload", headers={"Origin": f"http://localhost:{PORT}"}).status_code == 200
    assert via_localhost.post("/api/reload", headers={"Origin": OWN_ORIGIN}).status_code == 403


def test_token_header_writes_need_no_origin(browser_like):
    client, controller, stops = browser_like
    elsewhere = {"Origin": f"http://127.0.0.1:{PORT + 1}"}
    assert client.post("/api/stop", headers=AUTH).status_code == 200
    assert client.post("/api/stop", headers={"X-JuQueue-Token": TOKEN, **elsewhere}).status_code == 200
    assert client.post("/api/runs/cancel", json={"ids": ["e@a"]}, headers={**AUTH, **elsewhere}).status_code == 200
    assert stops == [False, False] and controller.cancelled == [["e@a"]]
    # A wrong header is not rescued by a right cookie, nor by the right Origin.
    resp = client.post("/api/stop", headers={"Authorization": "Bearer wrong", "Origin": OWN_ORIGIN})
    assert resp.status_code == 401 and stops == [False, False]


def test_cookie_reads_still_work_from_anywhere(browser_like):
    client, _, _ = browser_like
    for path in ("/api/runs", "/api/status", "/api/nodes", "/api/runs/e@a", "/api/runs/e@a/logs"):
        assert client.get(path).status_code == 200, path
        assert client.get(path, headers={"Origin": f"http://127.0.0.1:{PORT + 1}"}).status_code == 200, path
    for method in ("HEAD", "OPTIONS"):  # reads: no route answers them (405), but never a CSRF 403
        assert client.request(method, "/api/runs", headers={"Origin": "http://127.0.0.1:1"}).status_code == 405, method


def test_no_token_at_all_is_still_401_not_403(setup):
    app, _, _, stops = setup
    client = TestClient(app, base_url=OWN_ORIGIN)
    for origin in (None, OWN_ORIGIN, "http://127.0.0.1:1"):
        resp = client.post("/api/stop", headers={"Origin": origin} if origin else {})
        assert resp.status_code == 401 and "token" in resp.json()["detail"]
    assert stops == []


def test_require_token_dependency_applies_the_same_rule(setup):
    """Routes keep the rule even if they are ever mounted without the middleware."""
    from fastapi import HTTPException
    from starlette.requests import Request

    from juqueue.api.auth import require_token

    app, _, _, _ = setup

    def request(method: str, headers: dict[str, str]) -> Request:
        raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        return Request({"type": "http", "method": method, "path": "/api/stop", "scheme": "http", "headers": raw,
                        "app": app, "query_string": b""})

    cookie = {"host": f"127.0.0.1:{PORT}", "cookie": f"{COOKIE}={TOKEN}"}
    require_token(request("GET", cookie))
    require_token(request("POST", {**cookie, "origin": OWN_ORIGIN}))
    require_token(request("POST", {**AUTH, "host": f"127.0.0.1:{PORT}"}))
    with pytest.raises(HTTPException) as refused:
        require_token(request("POST", {**cookie, "origin": f"http://127.0.0.1:{PORT + 1}"}))
    assert refused.value.status_code == 403
    with pytest.raises(HTTPException) as missing:
        require_token(request("POST", {"host": f"127.0.0.1:{PORT}"}))
    assert missing.value.status_code == 401
