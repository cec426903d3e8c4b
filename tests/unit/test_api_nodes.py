"""The node routes over the real controller on fakes (controller_fakes.py): the typed node shape
shared by `/api/nodes` and `/api/status`, drain and stop with their 404/409/200 answers, and the
token and CSRF rules on them."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from controller_fakes import InlineController, run_specs
from juqueue.api.app import create_app
from juqueue.api.context import AppContext
from juqueue.api.models.nodes import NodeModel
from juqueue.definitions.models import ClusterSpec
from juqueue.status import NodeState

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

TOKEN = "node-token"
PORT = 51998
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture()
def api(make, tmp_path: Path):
    spec = ClusterSpec(name="c", type="local", num_slots=2, max_jobs=2)
    h = make([spec], run_specs(4, "c"))
    h.step()
    for node in h.nodes_of("c"):
        h.heartbeat(node)
    h.step()
    for node in h.nodes_of("c"):
        for slot, a in enumerate(h.publisher.to_node(node)):
            h.started(a.global_id, slot=slot)
    h.step()
    ctx = AppContext(store=h.store, controller=InlineController(h), token=TOKEN, work=h.controller.config.work,  # type: ignore[arg-type]
                     clusters=lambda: {"c": spec}, port=PORT, reload=lambda **kw: {}, request_stop=lambda cancel: {})
    with TestClient(create_app(ctx)) as client:
        yield h, client


def test_nodes_and_status_share_the_typed_node_shape(api):
    h, client = api
    nodes = client.get("/api/nodes", headers=AUTH).json()
    assert [n["name"] for n in nodes] == h.nodes_of("c")
    fields = set(NodeModel.model_fields)
    for node in nodes:
        assert set(node) == fields
        assert node["live"] and node["state"] == "up" and node["num_slots"] == node["slots_total"] == 2
        assert node["slots"] == sorted(node["runs"]) and node["kept_reason"].startswith("within the target")
    status = client.get("/api/status", headers=AUTH).json()
    (cluster,) = status["clusters"]
    assert cluster["nodes"] == nodes
    schema = client.get("/openapi.json").json()
    assert "NodeModel" in schema["components"]["schemas"]
    ok = schema["paths"]["/api/nodes"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["items"]["$ref"].endswith("/NodeModel")


def test_drain_then_drain_again_then_stop(api):
    h, client = api
    a = h.nodes_of("c")[0]
    first = client.post(f"/api/nodes/{a}/drain", headers=AUTH, json={"reason": "flaky GPU"})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["action"] == "drain" and body["changed"] is True
    assert body["node"]["state"] == "draining" and body["node"]["reason"] == "draining: drained by user (flaky GPU)"
    assert body["node"]["drained_by_user"] is True
    again = client.post(f"/api/nodes/{a}/drain", headers=AUTH)
    assert again.status_code == 200 and again.json()["changed"] is False
    stop = client.post(f"/api/nodes/{a}/stop", headers=AUTH)
    assert stop.status_code == 200 and stop.json()["node"]["state"] == "stopping"
    assert stop.json()["node"]["reason"] == "stopping: stopped by user"
    refused = client.post(f"/api/nodes/{a}/drain", headers=AUTH)
    assert refused.status_code == 409 and "already stopping" in refused.json()["detail"]
    assert client.post(f"/api/nodes/{a}/stop", headers=AUTH).json()["changed"] is False


def test_unknown_node_is_404_and_an_ended_one_409(api):
    h, client = api
    missing = client.post("/api/nodes/no-such-node/drain", headers=AUTH)
    assert missing.status_code == 404 and "no-such-node" in missing.json()["detail"]
    a = h.nodes_of("c")[0]
    client.post(f"/api/nodes/{a}/stop", headers=AUTH)
    h.backends["local"].mark_gone(a, "worker shut down")
    h.tick()
    assert h.node(a).state == NodeState.GONE.value
    for action in ("drain", "stop"):
        ended = client.post(f"/api/nodes/{a}/{action}", headers=AUTH)
        assert ended.status_code == 409, ended.text
        assert "has ended" in ended.json()["detail"] and a in ended.json()["detail"]
    gone = [n for n in client.get("/api/nodes", headers=AUTH).json() if n["name"] == a]
    assert gone and gone[0]["live"] is False and gone[0]["state"] == "gone"


def test_actions_need_the_token_in_a_header_or_the_servers_origin(api):
    h, client = api
    a = h.nodes_of("c")[0]
    assert client.post(f"/api/nodes/{a}/drain").status_code == 401
    client.cookies.set(f"juqueue_token_{PORT}", TOKEN)
    cookie_only = client.post(f"/api/nodes/{a}/drain", headers={"Origin": "http://evil.example"})
    assert cookie_only.status_code == 403
    assert h.controller.nodes[a].state == NodeState.UP
    same_origin = client.post(f"/api/nodes/{a}/drain", headers={"Origin": "http://testserver"})
    assert same_origin.status_code == 200
    client.cookies.clear()


def test_cli_node_drain_and_stop_through_the_api(api, monkeypatch):
    """`juqueue node drain|stop NAME`: --json prints the API's answer; an unknown node exits 1
    with the server's words."""
    import json

    from typer.testing import CliRunner

    from juqueue import client as client_mod
    from juqueue.cli import app

    h, test_client = api
    work = h.controller.config.work
    work.ensure_state_dir()
    work.token_file.write_text(TOKEN + "\n")
    work.server_file.write_text(json.dumps({"url": "http://testserver", "port": 1, "pid": 1}))

    class Client(client_mod.ApiClient):
        def __init__(self, url, token, timeout=30.0, http=None):  # type: ignore[no-untyped-def]
            super().__init__(url, token, timeout, http=test_client)

        def close(self) -> None:  # shared by the test
            pass

    monkeypatch.setattr(client_mod, "ApiClient", Client)
    for var in ("JUQUEUE_URL", "JUQUEUE_TOKEN", "JUQUEUE_WORK_DIR"):
        monkeypatch.delenv(var, raising=False)
    runner = CliRunner()
    a, b = h.nodes_of("c")
    drained = runner.invoke(app, ["node", "drain", a, "--json", "-r", "disk", "--work-dir", str(work.root)])
    assert drained.exit_code == 0, drained.output
    assert json.loads(drained.stdout)["node"]["reason"] == "draining: drained by user (disk)"
    again = runner.invoke(app, ["node", "drain", a, "--work-dir", str(work.root)])
    assert again.exit_code == 0 and again.stdout.startswith(f"unchanged: node {a}: draining")
    stopped = runner.invoke(app, ["node", "stop", b, "--work-dir", str(work.root)])
    assert stopped.exit_code == 0 and stopped.stdout.strip() == f"node {b}: stopping (stopping: stopped by user)"
    unknown = runner.invoke(app, ["node", "stop", "nope", "--work-dir", str(work.root)])
    assert unknown.exit_code == 1 and "no node named 'nope'" in unknown.stderr
