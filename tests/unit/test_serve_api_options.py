"""serve's API options: the port chosen and the private Unix socket."""

from __future__ import annotations

import socket
import stat

import pytest

from juqueue.errors import ConfigError
from juqueue.serve.listen import api_port, bind_unix_socket
from juqueue.serve.options import ServeOptions


def test_api_port_choices(tmp_path):
    opts = ServeOptions(def_dir=tmp_path, work_dir=tmp_path)
    assert api_port(ServeOptions(def_dir=tmp_path, work_dir=tmp_path, port=-1)) is None
    assert api_port(ServeOptions(def_dir=tmp_path, work_dir=tmp_path, unix_socket=tmp_path / "s")) is None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    assert api_port(ServeOptions(def_dir=tmp_path, work_dir=tmp_path, unix_socket=tmp_path / "s", port=free)) == free
    assert api_port(opts) is not None


def test_bind_unix_socket_is_private_and_replaces_a_stale_one(tmp_path):
    path = tmp_path / "api.sock"
    sock = bind_unix_socket(path)
    try:
        assert stat.S_ISSOCK(path.lstat().st_mode) and stat.S_IMODE(path.lstat().st_mode) == 0o600
        assert [p.name for p in tmp_path.iterdir()] == ["api.sock"]  # its private bind dir is gone
        with pytest.raises(ConfigError, match="in use"):
            bind_unix_socket(path)
    finally:
        sock.close()
    again = bind_unix_socket(path)  # stale: nobody listens
    again.close()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a socket"):
        bind_unix_socket(tmp_path / "file")
    with pytest.raises(ConfigError, match="too long"):
        bind_unix_socket(tmp_path / ("x" * 120))
