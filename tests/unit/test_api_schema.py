"""The API against its own OpenAPI (Schemathesis), over the real controller on fakes
(controller_fakes.py) and a real SQLite store: no 500 for any input, every answer matches the
schema it declares; without the token every non-public path answers 401. `POST /api/stop` and
`POST /api/reload` are left out (they end the server, or evaluate a def dir in a subprocess), and
so are the server-sent event streams (`GET /api/events`, `/api/events/log`: they never end; their
own tests are tests/unit/test_feed_buffer.py and tests/integration/test_feed_local.py)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from hypothesis import strategies as st

from controller_fakes import Harness, InlineController, build_harness, run_specs
from juqueue.api.app import create_app
from juqueue.api.context import AppContext
from juqueue.definitions.models import ClusterSpec, DefinitionError

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import schemathesis
    from fastapi.testclient import TestClient
    from schemathesis.checks import (content_type_conformance, not_a_server_error, response_headers_conformance,
                                     response_schema_conformance)

TOKEN = "schema-token"
PORT = 51997
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PUBLIC = {"/", "/health", "/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"}
EXCLUDED = {("POST", "/api/stop"), ("POST", "/api/reload"), ("GET", "/api/events"), ("GET", "/api/events/log")}
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance, response_headers_conformance]
MAX_EXAMPLES = 25


def _populate(h: Harness) -> None:
    """Nodes up, one run completed, one failed (with stderr), others running or queued, one
    definition error: every shape has something to show."""
    h.step()
    for node in h.nodes_of("c"):
        h.heartbeat(node)
    h.step()
    running = [a for node in h.nodes_of("c") for a in h.publisher.to_node(node)]
    for slot, a in enumerate(running):
        h.started(a.global_id, slot=slot % 2)
    h.step()
    ok, bad = running[0].global_id, running[1].global_id
    h.exited(ok, 0)
    h.exited(bad, 3)
    work = h.controller.config.work
    for gid in (ok, bad):
        out = work.attempt_log("exp", gid.split("@", 1)[1], 1, "out")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(f"{gid} says hello\n", encoding="utf-8")
    err = work.attempt_log("exp", bad.split("@", 1)[1], 1, "err")
    err.write_text("".join(f"line {i}\n" for i in range(80)) + "Traceback: boom é\n", encoding="utf-8")
    for node in h.nodes_of("c"):
        h.heartbeat(node)
    h.step()
    error = DefinitionError(file="broken.yaml", message="unknown cluster 'x'", run="r1", field="cluster",
                            experiment="broken")
    h.controller.definition_errors = [str(error), "clusters.yaml: not applied"]
    h.controller.actions.error_details = {str(error): error}


def _app(tmp: Path):  # type: ignore[no-untyped-def]
    spec = ClusterSpec(name="c", type="local", num_slots=2, max_jobs=2)
    h = build_harness(tmp, [spec], run_specs(8, "c"))
    _populate(h)
    ctx = AppContext(store=h.store, controller=InlineController(h), token=TOKEN, work=h.controller.config.work,  # type: ignore[arg-type]
                     clusters=lambda: {"c": spec}, port=PORT, reload=lambda **kw: {}, request_stop=lambda cancel: {})
    return h, create_app(ctx)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory):
    """For the tests that only read (the Schemathesis test changes runs and nodes: its own app)."""
    h, application = _app(Path(tmp_path_factory.mktemp("schema")))
    yield application
    h.close()


@pytest.fixture()
def fuzzed_app(tmp_path: Path):
    h, application = _app(tmp_path)
    yield application
    h.close()


def _operations(app) -> list:  # type: ignore[no-untyped-def]
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    ops = [r.ok() for r in schema.get_all_operations()]
    return [op for op in ops if (op.method.upper(), op.path) not in EXCLUDED]


def _with_real_names(op, names: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    """The operation's cases, half of them naming a run or node that exists (random path
    parameters alone would only ever meet 404s)."""
    wanted = [p for p in names if "{" + p + "}" in op.path]
    if not wanted:
        return op.as_strategy()
    pick = st.sampled_from([None, *names[wanted[0]]])

    def named(pair):  # type: ignore[no-untyped-def]
        case, name = pair
        if name is not None:
            case.path_parameters = {**(case.path_parameters or {}), wanted[0]: name}
        return case

    return st.tuples(op.as_strategy(), pick).map(named)


def test_every_operation_answers_its_declared_schema_and_never_500(fuzzed_app) -> None:
    app = fuzzed_app
    ops = _operations(app)
    assert len(ops) >= 15, [f"{op.method} {op.path}" for op in ops]
    with TestClient(app) as client:
        names = {"global_id": [r["global_id"] for r in client.get("/api/runs", headers=AUTH).json()],
                 "name": [n["name"] for n in client.get("/api/nodes", headers=AUTH).json()]}
    seen: dict[str, set[int]] = {}
    for op in ops:
        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=_with_real_names(op, names))
        def check(case) -> None:  # type: ignore[no-untyped-def]
            response = case.call_and_validate(headers=AUTH, checks=CHECKS)
            seen.setdefault(f"{op.method.upper()} {op.path}", set()).add(response.status_code)

        check()
    # the reads' answers were checked, not only their errors (the verbs' 200 depends on the draw)
    never_ok = sorted(k for k, codes in seen.items() if k.startswith("GET") and 200 not in codes)
    assert not never_ok, f"never answered 200 (only errors were checked): {never_ok}"


def test_invalid_input_is_a_4xx_never_a_500(fuzzed_app) -> None:
    """Schemathesis's negative cases (wrong types, out of range, malformed bodies)."""
    refused = 0
    for op in _operations(fuzzed_app):
        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE))
        def check(case) -> None:  # type: ignore[no-untyped-def]
            nonlocal refused
            response = case.call_and_validate(headers=AUTH, checks=[not_a_server_error])
            refused += 400 <= response.status_code < 500

        try:
            check()
        except Unsatisfiable:  # no parameter or body that could be wrong (GET /api/status, ...)
            continue
    assert refused > 100


def test_without_the_token_every_non_public_path_answers_401(app) -> None:
    spec = TestClient(app).get("/openapi.json").json()
    checked = 0
    with TestClient(app) as client:
        for path, methods in spec["paths"].items():
            if path in PUBLIC:
                continue
            concrete = path.replace("{global_id}", "exp@r0").replace("{name}", "no-such-node")
            for method in methods:
                resp = client.request(method.upper(), concrete, json={})
                assert resp.status_code == 401, (method, path, resp.status_code, resp.text)
                checked += 1
    assert checked >= 17


def test_run_detail_has_slot_lists_hosts_and_a_failed_attempts_stderr(app) -> None:
    with TestClient(app) as client:
        runs = client.get("/api/runs", headers=AUTH, params={"status": "failed"}).json()
        assert len(runs) == 1
        detail = client.get(f"/api/runs/{runs[0]['global_id']}", headers=AUTH).json()
    attempt = detail["attempts"][0]
    assert isinstance(attempt["slots"], list) and attempt["slots"] == [attempt["slot"]]
    assert "host" in attempt
    assert len(attempt["stderr_tail"]) == 50 and attempt["stderr_tail"][-1] == "Traceback: boom é"
    assert [e["kind"] for e in detail["events"]]


def test_logs_tail_and_download(app) -> None:
    with TestClient(app) as client:
        gid = client.get("/api/runs", headers=AUTH, params={"status": "failed"}).json()[0]["global_id"]
        whole = client.get(f"/api/runs/{gid}/logs", headers=AUTH, params={"stream": "err"}).json()
        tail = client.get(f"/api/runs/{gid}/logs", headers=AUTH, params={"stream": "err", "tail": 19}).json()
        down = client.get(f"/api/runs/{gid}/logs/download", headers=AUTH, params={"stream": "err"})
        live = client.get("/api/runs", headers=AUTH, params={"status": "running"}).json()[0]["global_id"]
        missing = client.get(f"/api/runs/{live}/logs/download", headers=AUTH, params={"stream": "err"})
        queued = client.get("/api/runs", headers=AUTH, params={"status": "queued"}).json()[0]["global_id"]
        unstarted = client.get(f"/api/runs/{queued}/logs/download", headers=AUTH)
    assert whole["offset"] == 0 and whole["next_offset"] == whole["size"] == len(whole["text"].encode())
    # the last 19 bytes start inside 'é' (2 bytes) at most once: the text starts at a whole character
    assert whole["text"].endswith(tail["text"]) and tail["next_offset"] == whole["size"]
    assert tail["text"].endswith("boom é\n") and tail["offset"] >= whole["size"] - 19
    assert down.status_code == 200 and down.text == whole["text"]
    assert down.headers["content-type"].startswith("text/plain")
    assert down.headers["content-disposition"].startswith("attachment")
    assert missing.status_code == 404 and "no stderr file" in missing.json()["detail"]
    assert unstarted.status_code == 404 and "has not started" in unstarted.json()["detail"]


def test_experiments_and_structured_definition_errors(app) -> None:
    with TestClient(app) as client:
        exps = {e["name"]: e for e in client.get("/api/experiments", headers=AUTH).json()}
        status = client.get("/api/status", headers=AUTH).json()
    exp = exps["exp"]
    assert exp["total"] == 8 and exp["counts"]["completed"] == 1 and exp["counts"]["failed"] == 1
    assert exp["source_file"] == "exp.yaml" and exp["errors"] == [] and exp["budget_node_hours"] is None
    assert exp["node_hours"] >= 0 and exp["projected_node_hours"] is None  # no duration, fewer than 3 completed
    broken = exps["broken"]
    assert broken["total"] == 0 and broken["source_file"] == "broken.yaml" and not broken["defined"]
    assert [e["run"] for e in broken["errors"]] == ["r1"]
    assert status["definition_errors"] == [e["text"] for e in status["definition_error_details"]]
    assert status["definition_error_details"][0]["experiment"] == "broken"
    assert status["definition_error_details"][1]["file"] is None
    with TestClient(app) as client:
        schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert "batch" not in schemas["StatusModel"].get("required", [])  # optional: where the server records it
    assert set(schemas["BatchTimingModel"]["properties"]) == {"p50_ms", "p95_ms", "count"}
