"""The building blocks of `juqueue serve`: its options, the work-dir lock, token, port, and the
helper processes (Celery beat, Flower) it starts.

`juqueue.server_runtime` wires them together with the broker, store, controller and API;
this module imports none of those, so it stays cheap to import and nothing imports back.
"""

from __future__ import annotations

import ctypes
import fcntl
import logging
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from juqueue.errors import AlreadyRunningError, ConfigError
from juqueue.paths import WorkDir, write_atomic

log = logging.getLogger("juqueue.server")

DEFAULT_PORT = 51234


@dataclass
class ServeOptions:
    """What `juqueue serve` was given (the CLI's flags, paths resolved)."""

    def_dir: Path
    work_dir: Path
    broker: str | None = None
    db_url: str | None = None
    host: str = "127.0.0.1"
    port: int | None = None  # None: 51234, or a free port when that is taken; -1: no TCP port
    unix_socket: Path | None = None  # the API on this Unix socket (mode 0600), TCP only with an explicit --port
    broker_host: str | None = None
    tick_interval: float = 2.0
    log_level: str = "INFO"
    flower_port: int | None = None  # None: no Flower
    hold_new: bool = False  # runs that first appear are held


class WorkDirLock:
    """One controller per work dir: flock, with host and pid inside (flock does not cross
    hosts on every parallel file system, so a human can see who holds it)."""

    def __init__(self, work: WorkDir) -> None:
        self.work = work
        self._fh = None

    def acquire(self) -> None:
        self.work.root.mkdir(parents=True, exist_ok=True)
        self.work.ensure_state_dir()
        fh = open(self.work.lock_file, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise AlreadyRunningError(f"work dir {self.work.root} is in use by a running JuQueue ({holder}); stop it first") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"host={socket.gethostname()} pid={os.getpid()}\n")
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def load_or_create_token(work: WorkDir) -> str:
    """The work dir keeps its token across restarts, so dashboard links and clients stay valid."""
    if work.token_file.exists():
        return work.token_file.read_text().strip()
    token = secrets.token_urlsafe(24)
    write_atomic(work.token_file, token + "\n", mode=0o600)
    return token


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


UNIX_PATH_MAX = 107  # sun_path is 108 bytes with its NUL


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


def default_broker_host() -> str:
    """The hostname's address, which compute nodes can reach; loopback when it does not resolve."""
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def become_subreaper() -> None:
    """Orphaned run processes of local nodes are reparented here, where they can be found."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_CHILD_SUBREAPER = 36
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except OSError:
        log.debug("prctl(PR_SET_CHILD_SUBREAPER) not available")


def _die_with_parent() -> None:
    """Beat and Flower serve this `serve` only: they end when it dies, even by SIGKILL."""
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_PDEATHSIG = 1
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def start_beat(work: WorkDir, tick_queue: str, tick_interval: float) -> subprocess.Popen:
    """Celery beat publishes the controller's periodic tick; it dies with this `serve`."""
    env = dict(os.environ, JUQUEUE_WORK_DIR=str(work.root), JUQUEUE_TICK_INTERVAL=str(tick_interval), JUQUEUE_TICK_QUEUE=tick_queue)
    log_file = open(work.beat_log, "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "juqueue.controller.beat", "beat", "-s", str(work.beat_schedule),
         "--pidfile=", "-l", "WARNING"],
        env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=_die_with_parent,
    )


def start_flower(work: WorkDir, port: int, token: str) -> subprocess.Popen:
    """Flower shows task arguments: it listens on loopback and asks for a password (the
    dashboard token), handed over through its environment, never its arguments."""
    env = dict(os.environ, JUQUEUE_WORK_DIR=str(work.root), FLOWER_BASIC_AUTH=f"juqueue:{token}")
    log_file = open(work.flower_log, "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "juqueue.workers.app", "flower", "--address=127.0.0.1", f"--port={port}",
         "--url_prefix=flower", "--purge_offline_workers=300"],
        env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=_die_with_parent,
    )
