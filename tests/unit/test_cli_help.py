"""Every CLI command answers --help (the README lists them), and client errors are one line."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from juqueue.cli import app
from support.processes import free_port

COMMANDS = ["serve", "status", "runs", "cancel", "requeue", "logs", "reload", "url", "stop", "slurm-script", "watch", "node"]
NODE_COMMANDS = [["node", "drain"], ["node", "stop"]]
CLIENT_COMMANDS = ["status", "runs", "cancel", "requeue", "logs", "reload", "url", "stop", "watch"]
runner = CliRunner()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    for var in ("JUQUEUE_URL", "JUQUEUE_TOKEN", "JUQUEUE_WORK_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)


def test_root_help_lists_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    for command in COMMANDS:
        assert command in result.output
    assert "--def-dir" in result.output and "--work-dir" in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    if command in CLIENT_COMMANDS:
        for option in ("--url", "--port", "--work-dir", "--token"):
            assert option in result.output, (command, option)


@pytest.mark.parametrize("command", NODE_COMMANDS)
def test_node_command_help(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    for option in ("NAME", "--reason", "--json", "--url", "--port", "--work-dir", "--token"):
        assert option in result.output, (command, option)


def test_root_help_lists_node_last():
    output = runner.invoke(app, ["--help"]).output
    commands = output[output.index("Commands"):]  # option help also says "node"
    assert commands.index("│ node ") > commands.index("│ simulate ")


@pytest.mark.parametrize("args", [["status"], ["runs", "--json"], ["cancel", "e@a"], ["logs", "e@a"], ["url"], ["stop"],
                                  ["node", "drain", "n1"], ["node", "stop", "n1"],
                                  ["watch"], ["watch", "--once", "--until-done"]])
def test_no_server_is_one_line_and_exit_2(args):
    port = free_port()
    result = runner.invoke(app, [*args, "--port", str(port)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [f"juqueue: no JuQueue server answered at http://127.0.0.1:{port} (tried: --port {port})"]


def test_cancel_needs_runs_or_experiment():
    result = runner.invoke(app, ["cancel", "--port", str(free_port())])
    assert result.exit_code == 2 and "experiment" in result.stderr


def test_slurm_script_unknown_cluster(tmp_path: Path):
    defs = tmp_path / "defs"
    defs.mkdir()
    (defs / "clusters.yaml").write_text("local:\n  type: local\n  num_slots: 1\n")
    result = runner.invoke(app, ["slurm-script", "nope", "--def-dir", str(defs), "--work-dir", str(tmp_path / "w")])
    assert result.exit_code == 2
    assert "'nope'" in result.stderr and "local" in result.stderr


def test_client_commands_against_the_app(tmp_path: Path, monkeypatch):
    """runs --json prints the API's list unchanged; a wrong token is named with its source."""
    from juqueue import client as client_mod

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from juqueue.api.app import create_app
    from juqueue.api.context import AppContext
    from juqueue.paths import WorkDir
    from juqueue.store.engine import make_engine
    from juqueue.store.store import Store
    from juqueue.store.tables import RunRow

    work = tmp_path / "w"
    WorkDir(work).ensure_state_dir()
    WorkDir(work).token_file.write_text("right\n")
    WorkDir(work).server_file.write_text(json.dumps({"url": "http://testserver", "port": 1, "pid": 1}))
    store = Store(make_engine(None, work))
    with store.session() as s:
        s.add(RunRow(global_id="e@a", experiment="e", run_id="a", cluster="local", status="queued", queued_at=1.0))
        s.commit()
    ctx = AppContext(store=store, controller=None, token="right", work=WorkDir(work), clusters=dict, port=1,  # type: ignore[arg-type]
                     reload=dict, request_stop=lambda c: {})
    test_client = TestClient(create_app(ctx))

    class Client(client_mod.ApiClient):
        def __init__(self, url, token, timeout=30.0, http=None):
            super().__init__(url, token, timeout, http=test_client)
            if token is None:
                test_client.headers.pop("Authorization", None)

        def close(self) -> None:  # the CLI closes its client; this one is shared by the test
            pass

    monkeypatch.setattr(client_mod, "ApiClient", Client)
    result = runner.invoke(app, ["runs", "--json", "--work-dir", str(work)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == test_client.get("/api/runs", headers={"Authorization": "Bearer right"}).json()
    result = runner.invoke(app, ["runs", "--work-dir", str(work), "--token", "wrong"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "juqueue: the server at http://testserver rejected the token from --token"
    result = runner.invoke(app, ["runs", "--status", "bogus", "--work-dir", str(work)])
    assert result.exit_code == 2 and "allowed: held, queued" in result.stderr


def test_serve_timing_flags_are_checked_before_anything_starts(tmp_path: Path, monkeypatch):
    """A bad timing names the flag or the variable; nothing is created in the work dir."""
    work = tmp_path / "w"
    result = runner.invoke(app, ["serve", "--def-dir", str(tmp_path), "--work-dir", str(work), "--lease-ttl", "-3"])
    assert result.exit_code == 2 and "--lease-ttl" in result.stderr, result.output
    monkeypatch.setenv("JUQUEUE_HEARTBEAT_TIMEOUT", "soon")
    result = runner.invoke(app, ["serve", "--def-dir", str(tmp_path), "--work-dir", str(work)])
    assert result.exit_code == 2 and "JUQUEUE_HEARTBEAT_TIMEOUT" in result.stderr, result.output
    assert not work.exists()
