"""The routes the dashboard adds (`/api/about`, `/api/runs/{id}/definition`, `/api/reload/preview`)
and the page shell's files, over the real controller on fakes and a real SQLite store."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from controller_fakes import InlineController, build_harness, run_specs
from juqueue.api.app import create_app
from juqueue.api.context import AppContext
from juqueue.definitions.models import ClusterSpec

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

TOKEN = "dash-token"
PORT = 51996
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PREVIEW = {"added": ["exp@new"], "updated": [], "undefined": [], "would_stop": ["exp@r0"], "errors": [], "aborted": False}


@pytest.fixture()
def client(tmp_path: Path):
    spec = ClusterSpec(name="c", type="local", num_slots=2, max_jobs=2)
    h = build_harness(tmp_path, [spec], run_specs(3, "c"))
    asked: list[dict] = []

    def reload(**kw: object) -> dict:
        asked.append(kw)
        return PREVIEW if kw.get("dry_run") else {"added": []}

    ctx = AppContext(store=h.store, controller=InlineController(h), token=TOKEN, work=h.controller.config.work,  # type: ignore[arg-type]
                     clusters=lambda: {"c": spec}, port=PORT, reload=reload, request_stop=lambda cancel: {},
                     flower_url="http://127.0.0.1:5555/flower")
    with TestClient(create_app(ctx)) as c:
        c.asked = asked  # type: ignore[attr-defined]
        yield c
    h.close()


def test_about_names_the_version_and_flower(client) -> None:
    about = client.get("/api/about", headers=AUTH).json()
    assert about["flower_url"] == "http://127.0.0.1:5555/flower" and about["version"]
    assert client.get("/api/about").status_code == 401


def test_run_definition_gives_the_command_and_settings(client) -> None:
    gid = client.get("/api/runs", headers=AUTH).json()[0]["global_id"]
    definition = client.get(f"/api/runs/{gid}/definition", headers=AUTH).json()
    assert definition["global_id"] == gid and definition["cmd"] and definition["cmd"] == definition["spec"]["cmd"]
    assert definition["spec"]["cluster"] == "c"
    missing = client.get("/api/runs/exp@nope/definition", headers=AUTH)
    assert missing.status_code == 404 and "exp@nope" in missing.json()["detail"]


def test_reload_preview_asks_for_a_dry_run_and_is_a_write(client) -> None:
    answer = client.post("/api/reload/preview", headers=AUTH)
    assert answer.status_code == 200 and answer.json() == PREVIEW
    assert client.asked == [{"dry_run": True}]  # type: ignore[attr-defined]
    # it evaluates the user's Python definitions: the cookie alone from another origin is refused
    client.cookies.set(f"juqueue_token_{PORT}", TOKEN)
    refused = client.post("/api/reload/preview", headers={"Origin": "http://127.0.0.1:1"})
    assert refused.status_code == 403 and client.asked == [{"dry_run": True}]  # type: ignore[attr-defined]


def test_status_clusters_carry_their_slots(client) -> None:
    status = client.get("/api/status", headers=AUTH).json()
    assert [(c["name"], c["num_slots"]) for c in status["clusters"]] == [("c", 2)]


def test_the_shell_and_its_files_are_served_with_relative_urls(client) -> None:
    shell = client.get("/")
    assert shell.status_code == 200 and 'src="static/js/app.js"' in shell.text and 'href="docs"' in shell.text
    assert '"/' not in shell.text.replace('href="#/', "")  # no absolute path: a proxy's path prefix keeps working
    static = Path(__file__).resolve().parents[2] / "juqueue" / "api" / "static"
    for path in sorted(static.rglob("*")):
        if path.is_file():
            rel = path.relative_to(static).as_posix()
            assert client.get(f"/static/{rel}").status_code == 200, rel
    redirect = client.get(f"/?token={TOKEN}", follow_redirects=False)
    assert redirect.status_code == 303 and redirect.headers["location"] == "./"


def test_page_scripts_never_put_data_into_markup() -> None:
    """User strings only as text: no innerHTML/outerHTML/insertAdjacentHTML/document.write anywhere."""
    js = Path(__file__).resolve().parents[2] / "juqueue" / "api" / "static" / "js"
    for path in js.glob("*.js"):
        text = path.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in text, f"{path.name} uses {sink}"
        assert 'fetch("/' not in text and 'EventSource("/' not in text, f"{path.name} uses an absolute URL"
