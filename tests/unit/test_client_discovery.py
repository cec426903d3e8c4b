"""How the CLI finds its server and token: options, environment, work dir, registry, default; first match wins."""

from __future__ import annotations

import json
import os
import socket
import stat
from pathlib import Path

import pytest

from juqueue.client import (
    DEFAULT_URL, ApiClient, ServerUnreachable, find_server, find_token, load_registry, locate_work_dir,
    record_server, registry_path, unregister_server,
)
from juqueue.paths import WorkDir
from support.processes import free_port

HOST = socket.gethostname()


def _work(tmp_path: Path, name: str, url: str | None = None, token: str | None = None) -> Path:
    wd = tmp_path / name
    work = WorkDir(wd)
    work.broker_dir.mkdir(parents=True)
    work.broker_url_file.write_text("redis://x\n")
    if url:
        port = int(url.rsplit(":", 1)[1]) if url.startswith("http") else None
        work.server_file.write_text(json.dumps({"url": url, "port": port, "pid": 1}))
    if token:
        work.token_file.write_text(token + "\n")
    return wd


def alive(pids):
    return lambda pid: pid in pids


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    for var in ("JUQUEUE_URL", "JUQUEUE_TOKEN", "JUQUEUE_WORK_DIR"):
        monkeypatch.delenv(var, raising=False)


def test_order_url_port_env_workdir_registry_default(tmp_path):
    wd = _work(tmp_path, "w", url="http://127.0.0.1:6001", token="tw")
    reg = {"http://127.0.0.1:7001": {"work_dir": str(tmp_path / "r"), "pid": 11, "port": 7001, "hostname": HOST}}
    env = {"JUQUEUE_URL": "http://h:5001/"}
    kw = dict(work_dir=wd, registry=reg, alive=alive({11}))
    assert find_server(url="http://u:1", port=2, env=env, **kw).url == "http://u:1"
    assert find_server(url=None, port=2, env=env, **kw).url == "http://127.0.0.1:2"
    assert find_server(url=None, port=None, env=env, **kw).url == "http://h:5001"
    t = find_server(url=None, port=None, env={}, **kw)
    assert t.url == "http://127.0.0.1:6001" and "server.json" in t.how and t.token_dirs == (wd,)
    t = find_server(url=None, port=None, env={}, work_dir=None, registry=reg, alive=alive({11}))
    assert t.url == "http://127.0.0.1:7001" and "registry" in t.how and t.token_dirs == (tmp_path / "r",)
    t = find_server(url=None, port=None, env={}, work_dir=None, registry=reg, alive=alive(set()))
    assert t.url == DEFAULT_URL and t.how.startswith("the default address")


def test_registry_used_only_with_exactly_one_live_entry_of_this_host(tmp_path):
    reg = {
        "http://127.0.0.1:7001": {"work_dir": "/a", "pid": 11, "port": 7001, "hostname": HOST},
        "http://127.0.0.1:7002": {"work_dir": "/b", "pid": 12, "port": 7002, "hostname": HOST},
        "http://127.0.0.1:7003": {"work_dir": "/c", "pid": 13, "port": 7003, "hostname": "other-login-node"},
    }
    two = find_server(url=None, port=None, env={}, work_dir=None, registry=reg, alive=alive({11, 12, 13}))
    assert two.url == DEFAULT_URL and "2 servers" in two.how
    one = find_server(url=None, port=None, env={}, work_dir=None, registry=reg, alive=alive({12, 13}))
    assert one.url == "http://127.0.0.1:7002"


def test_workdir_without_server_json_falls_through(tmp_path):
    wd = _work(tmp_path, "w", token="tw")
    t = find_server(url=None, port=None, env={}, work_dir=wd, registry={}, alive=alive(set()))
    assert t.url == DEFAULT_URL and "no server.json" in t.how
    assert find_token(token=None, env={}, target=t) == ("tw", str(WorkDir(wd).token_file))


def test_locate_work_dir(tmp_path, monkeypatch):
    wd = _work(tmp_path, "w")
    deep = WorkDir(wd).run_dir("e", "r")
    deep.mkdir(parents=True)
    assert locate_work_dir(tmp_path / "x", {}, deep) == (tmp_path / "x").resolve()
    assert locate_work_dir(None, {"JUQUEUE_WORK_DIR": str(tmp_path / "y")}, deep) == (tmp_path / "y").resolve()
    assert locate_work_dir(None, {}, deep) == wd.resolve()
    assert locate_work_dir(None, {}, tmp_path) is None


def test_token_sources(tmp_path):
    wd = _work(tmp_path, "w", url="http://127.0.0.1:6001", token="from-file")
    other = _work(tmp_path, "o", token="from-registry")
    reg = {"http://127.0.0.1:9000": {"work_dir": str(other), "pid": 5, "port": 9000, "hostname": HOST}}
    t = find_server(url=None, port=None, env={}, work_dir=wd, registry=reg, alive=alive({5}))
    assert find_token(token="opt", env={"JUQUEUE_TOKEN": "env"}, target=t) == ("opt", "--token")
    assert find_token(token=None, env={"JUQUEUE_TOKEN": "env"}, target=t) == ("env", "JUQUEUE_TOKEN")
    assert find_token(token=None, env={}, target=t) == ("from-file", str(WorkDir(wd).token_file))
    # --port naming a registered server takes that server's token, before the local work dir's.
    t = find_server(url=None, port=9000, env={}, work_dir=wd, registry=reg, alive=alive({5}))
    assert find_token(token=None, env={}, target=t)[0] == "from-registry"
    # No work dir: the single live registry entry's work dir.
    t = find_server(url=None, port=None, env={}, work_dir=None, registry=reg, alive=alive({5}))
    assert find_token(token=None, env={}, target=t)[0] == "from-registry"
    t = find_server(url=None, port=None, env={}, work_dir=None, registry={}, alive=alive(set()))
    assert find_token(token=None, env={}, target=t)[0] is None


def test_record_and_unregister(tmp_path):
    home = tmp_path / "home"
    work = WorkDir(tmp_path / "w")
    work.root.mkdir()
    record_server(work, "http://127.0.0.1:6001", 6001, "127.0.0.1", home=home)
    server = json.loads(work.server_file.read_text())
    assert server["url"] == "http://127.0.0.1:6001" and server["pid"] == os.getpid() and server["host"] == "127.0.0.1"
    reg_file = registry_path(home)
    assert stat.S_IMODE(reg_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(reg_file.parent.stat().st_mode) == 0o700
    reg = load_registry(reg_file)
    assert reg["http://127.0.0.1:6001"]["work_dir"] == str(work.root.resolve())
    unregister_server(work, home=home)
    assert not work.server_file.exists()
    assert load_registry(reg_file) == {}


def test_api_client_unreachable():
    port = free_port()  # closed again: nobody listens there
    client = ApiClient(f"http://127.0.0.1:{port}", "t", timeout=2)
    with pytest.raises(ServerUnreachable) as info:
        client.get("/api/runs")
    assert info.value.url == f"http://127.0.0.1:{port}"
    client.close()


def test_default_address_takes_the_token_of_its_live_registry_entry(tmp_path):
    wd = _work(tmp_path, "w", url=DEFAULT_URL, token="tok-default")
    reg = {
        DEFAULT_URL: {"work_dir": str(wd), "pid": 11, "port": 51234, "hostname": HOST},
        "http://127.0.0.1:7002": {"work_dir": "/b", "pid": 12, "port": 7002, "hostname": HOST},
    }
    target = find_server(url=None, port=None, env={}, work_dir=None, registry=reg, alive=alive({11, 12}))
    assert target.url == DEFAULT_URL
    token, _source = find_token(token=None, env={}, target=target)
    assert token == "tok-default"


def test_work_dir_layout_keeps_juqueue_files_apart_from_experiments(tmp_path):
    work = WorkDir(tmp_path)
    assert work.run_dir("e", "r") == tmp_path / "e" / "r"  # the original JuQueue's place
    assert work.experiment_dir("e") == tmp_path / "e"
    assert work.log_dir("e", "r") == tmp_path / "e" / "r" / "logs"
    own = [work.lock_file, work.server_file, work.token_file, work.broker_url_file, work.db_file, work.node_dir("n"),
           work.beat_log, work.beat_schedule, work.flower_log, work.layout_file]
    assert all(p.is_relative_to(tmp_path / ".juqueue") for p in own)
    assert work.state_dir == tmp_path / ".juqueue"
    work.ensure_state_dir()
    assert stat.S_IMODE(work.state_dir.stat().st_mode) == 0o700


def test_locate_work_dir_from_a_run_directory_of_the_new_layout(tmp_path):
    wd = _work(tmp_path, "w")
    deep = WorkDir(wd).log_dir("exp", "run")
    deep.mkdir(parents=True)
    assert locate_work_dir(None, {}, deep) == wd.resolve()
    # A directory holding only runs (no .juqueue/) is not a work dir.
    (tmp_path / "plain" / "x").mkdir(parents=True)
    assert locate_work_dir(None, {}, tmp_path / "plain" / "x") is None


def test_unix_socket_is_found_like_a_port(tmp_path):
    sock = str(tmp_path / "jq.sock")
    wd = _work(tmp_path, "w", url=f"unix:{sock}", token="tw")
    t = find_server(url=None, port=None, env={}, work_dir=wd, registry={}, alive=alive(set()))
    assert t.url == f"unix:{sock}" and t.token_dirs == (wd,)
    assert find_token(token=None, env={}, target=t)[0] == "tw"
    reg = {f"unix:{sock}": {"work_dir": str(wd), "pid": 11, "port": None, "unix_socket": sock, "hostname": HOST}}
    t = find_server(url=None, port=None, env={}, work_dir=None, registry=reg, alive=alive({11}))
    assert t.url == f"unix:{sock}" and find_token(token=None, env={}, target=t)[0] == "tw"
    t = find_server(url=None, port=None, env={"JUQUEUE_URL": f"unix:{sock}"}, work_dir=None, registry=reg, alive=alive({11}))
    assert t.url == f"unix:{sock}" and find_token(token=None, env={}, target=t)[0] == "tw"


def test_record_a_unix_socket_server(tmp_path):
    home = tmp_path / "home"
    work = WorkDir(tmp_path / "w")
    work.ensure_state_dir()
    sock = tmp_path / "jq.sock"
    record_server(work, None, None, "127.0.0.1", home=home, unix_socket=sock)
    server = json.loads(work.server_file.read_text())
    assert server["url"] == f"unix:{sock}" and server["unix_socket"] == str(sock) and server["api"] is True
    assert stat.S_IMODE(work.server_file.stat().st_mode) == 0o600
    reg = load_registry(registry_path(home))
    assert reg[f"unix:{sock}"]["work_dir"] == str(work.root.resolve())
    unregister_server(work, home=home)
    assert load_registry(registry_path(home)) == {} and not work.server_file.exists()


def test_a_server_without_api_is_recorded_but_not_registered_and_named(tmp_path):
    home = tmp_path / "home"
    work = WorkDir(tmp_path / "w")
    work.ensure_state_dir()
    record_server(work, None, None, "127.0.0.1", home=home)
    server = json.loads(work.server_file.read_text())
    assert server["url"] is None and server["api"] is False and server["pid"] == os.getpid()
    assert load_registry(registry_path(home)) == {}
    t = find_server(url=None, port=None, env={}, work_dir=work.root, registry={}, alive=alive({os.getpid()}))
    assert t.url == "" and "without an API" in t.how and f"kill {os.getpid()}" in t.how
    # Its server gone: the usual fall-through.
    t = find_server(url=None, port=None, env={}, work_dir=work.root, registry={}, alive=alive(set()))
    assert t.url == DEFAULT_URL


def test_api_client_over_a_unix_socket(tmp_path):
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = json.dumps({"path": self.path, "auth": self.headers.get("Authorization")}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    class UnixHTTPServer(HTTPServer):
        address_family = socket.AF_UNIX

        def server_bind(self):
            self.socket.bind(self.server_address)
            self.server_name, self.server_port = "unix", 0

    path = str(tmp_path / "api.sock")
    server = UnixHTTPServer(path, Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = ApiClient(f"unix:{path}", "tok", timeout=5)
        assert client.unix_socket == path
        assert client.get("/api/runs", limit=1) == {"path": "/api/runs?limit=1", "auth": "Bearer tok"}
        client.close()
    finally:
        server.shutdown()
        server.server_close()
    gone = ApiClient(f"unix:{tmp_path / 'nobody.sock'}", "t", timeout=2)
    with pytest.raises(ServerUnreachable) as info:
        gone.get("/api/runs")
    assert info.value.url == f"unix:{tmp_path / 'nobody.sock'}"
    gone.close()
