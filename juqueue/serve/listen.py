"""The listen step: the API's TCP port chosen and its Unix socket bound before anything
else starts, so a taken port or a bad socket path fails `serve` at once."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import tempfile
from pathlib import Path

from juqueue.errors import ConfigError
from juqueue.serve.context import ServeContext
from juqueue.serve.options import ServeOptions

DEFAULT_PORT = 51234
UNIX_PATH_MAX = 107  # sun_path is 108 bytes with its NUL


def choose_port(host: str, requested: int | None) -> int:
    """A taken explicit port is an error; a taken default means a free port."""
    port = requested or DEFAULT_PORT
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return port
        except OSError as exc:
            if requested is not None:
                raise ConfigError(f"port {port} on {host} is taken ({exc.strerror}); choose another with --port") from None
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def api_port(opts: ServeOptions) -> int | None:
    """The TCP port the API takes: none with `--port -1`, or with `--unix-socket` and no `--port`."""
    if opts.port is not None and opts.port < 0:
        return None
    if opts.unix_socket is not None and opts.port is None:
        return None
    return choose_port(opts.host, opts.port)


def bind_unix_socket(path: Path) -> socket.socket:
    """A listening Unix socket at `path` that only its owner can connect to (mode 0600).

    The socket is bound inside a fresh 0700 directory beside `path`, made 0600, then renamed
    into place, so nobody can connect in between. A stale socket (nobody listening) is
    replaced; anything else at `path` is an error."""
    path = Path(path)
    if len(os.fsencode(path)) > UNIX_PATH_MAX:
        raise ConfigError(f"--unix-socket {path} is too long for a Unix socket ({len(os.fsencode(path))} bytes, at most {UNIX_PATH_MAX}); choose a shorter path")
    if not path.parent.is_dir():
        raise ConfigError(f"--unix-socket {path}: the directory {path.parent} does not exist")
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise ConfigError(f"--unix-socket {path} exists and is not a socket; remove it or choose another path")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
            in_use = True
        except OSError:
            in_use = False
        finally:
            probe.close()
        if in_use:
            raise ConfigError(f"--unix-socket {path} is in use by another server; choose another path")
        try:
            path.unlink()  # a socket left by a server that died
        except OSError as exc:
            raise ConfigError(f"--unix-socket {path} is a stale socket that cannot be removed ({exc.strerror}); choose another path") from None
    private = Path(tempfile.mkdtemp(prefix=".juqueue-sock-", dir=path.parent))  # 0700
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        tmp = private / "s"
        sock.bind(str(tmp))
        os.chmod(tmp, 0o600)
        os.rename(tmp, path)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"--unix-socket {path}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return sock


class ListenStep:
    """Reads opts.host, opts.port, opts.unix_socket; fills ctx.port, ctx.unix_socket and
    ctx.sockets. Stop closes every listening socket (the API step adds its TCP one) and
    removes the Unix socket's file."""

    name = "listen"
    requires: tuple[str, ...] = ("workdir",)

    def start(self, ctx: ServeContext) -> None:
        ctx.port = api_port(ctx.opts) or 0
        if ctx.opts.unix_socket is not None:
            ctx.unix_socket = Path(ctx.opts.unix_socket).expanduser().resolve()
            ctx.sockets.append(bind_unix_socket(ctx.unix_socket))

    def stop(self, ctx: ServeContext) -> None:
        for sock in ctx.sockets:
            sock.close()
        ctx.sockets.clear()
        if ctx.unix_socket is not None:
            try:
                if ctx.unix_socket.is_socket():
                    ctx.unix_socket.unlink()
            except OSError:
                pass
