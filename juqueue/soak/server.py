"""The soak's `juqueue serve`: started, SIGKILLed, started again on the same work dir and port, and
asked things through its API with the work dir's token."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from juqueue.paths import WorkDir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SoakServer:
    """One `serve` process at a time on one work dir; `flags` shorten its timings (Settings)."""

    def __init__(self, def_dir: Path, work_dir: Path, log_path: Path, flags: list[str]) -> None:
        self.def_dir, self.work_dir, self.log_path, self.flags = def_dir, work_dir, log_path, flags
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        return WorkDir(self.work_dir).token_file.read_text().strip()

    def start(self, timeout: float = 90) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("JUQUEUE_URL", "JUQUEUE_TOKEN")}
        cmd = [sys.executable, "-m", "juqueue", "serve", "--def-dir", str(self.def_dir), "--work-dir", str(self.work_dir),
               "--port", str(self.port), *self.flags]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.starts += 1
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited with {self.proc.returncode}; see {self.log_path}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200 and WorkDir(self.work_dir).token_file.exists():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"serve did not answer within {timeout} s; see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL to serve's process group (its broker and beat; workers live in sessions of their own)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

    def api(self, method: str, path: str, timeout: float = 60, **kw) -> httpx.Response:
        return httpx.request(method, self.url + path, headers={"Authorization": f"Bearer {self.token}"}, timeout=timeout, **kw)

    def runs(self) -> list[dict]:
        """Every run, 1,000 a page."""
        out: list[dict] = []
        while True:
            resp = self.api("GET", "/api/runs", params={"offset": len(out), "limit": 1000})
            resp.raise_for_status()
            page = resp.json()
            out += page
            if not page or len(out) >= int(resp.headers["X-Total-Count"]):
                return out

    def run(self, gid: str) -> dict:
        resp = self.api("GET", f"/api/runs/{gid}")
        resp.raise_for_status()
        return resp.json()

    def stop(self, cancel_jobs: bool = True, timeout: float = 120) -> int | None:
        """`juqueue stop [--cancel-jobs]` through the API; SIGTERM, then SIGKILL, if it does not end."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        try:
            self.api("POST", "/api/stop", json={"cancel_jobs": cancel_jobs})
        except httpx.HTTPError:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
