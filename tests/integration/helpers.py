"""Real components for integration tests: a `juqueue serve` process, its API, its work dir."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx

from juqueue.paths import WorkDir

REPO = Path(__file__).resolve().parents[2]
FINAL = {"completed", "failed", "cancelled"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_defs(def_dir: Path, clusters: str, experiments: dict[str, str]) -> Path:
    def_dir.mkdir(parents=True, exist_ok=True)
    (def_dir / "clusters.yaml").write_text(textwrap.dedent(clusters))
    for name, text in experiments.items():
        path = def_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return def_dir


class Server:
    """One `juqueue serve` subprocess with its own work dir and port."""

    def __init__(self, def_dir: Path, work_dir: Path, *extra: str, port: int | None = None, env: dict | None = None) -> None:
        self.def_dir, self.work_dir = def_dir, work_dir
        self.port = port or free_port()
        self.extra = list(extra)
        self.env = dict(os.environ, **(env or {}))
        self.env.pop("JUQUEUE_URL", None)
        self.proc: subprocess.Popen | None = None
        self.log = work_dir.parent / f"serve-{work_dir.name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, tick: float = 1.0, wait: bool = True) -> "Server":
        self.work_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "juqueue", "serve", "--def-dir", str(self.def_dir), "--work-dir", str(self.work_dir),
               "--port", str(self.port), "--tick-interval", str(tick), *self.extra]
        self.proc = subprocess.Popen(cmd, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"serve exited with {self.proc.returncode}:\n{self.log.read_text()[-4000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200 and WorkDir(self.work_dir).token_file.exists():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"serve did not answer within {timeout} s:\n{self.log.read_text()[-4000:]}")

    @property
    def token(self) -> str:
        return WorkDir(self.work_dir).token_file.read_text().strip()

    def api(self, method: str, path: str, **kw) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kw)

    def runs(self) -> list[dict]:
        out: list[dict] = []
        while True:  # every run, a page of 1,000 at a time; the total is in X-Total-Count
            resp = self.api("GET", "/api/runs", params={"offset": len(out), "limit": 1000})
            resp.raise_for_status()
            out += resp.json()
            if not resp.json() or len(out) >= int(resp.headers["X-Total-Count"]):
                return out

    def run(self, gid: str) -> dict:
        resp = self.api("GET", f"/api/runs/{gid}")
        resp.raise_for_status()
        return resp.json()

    def wait_for(self, predicate, timeout: float = 120, what: str = "condition"):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            try:
                last = self.runs()
                result = predicate(last)
                if result:
                    return result
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"timed out waiting for {what}; runs: {json.dumps(last, indent=1)[:4000]}\nlog:\n{self.log.read_text()[-4000:]}")

    def wait_all_final(self, timeout: float = 120) -> list[dict]:
        return self.wait_for(lambda runs: runs if runs and all(r["status"] in FINAL for r in runs) else None, timeout, "all runs final")

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "juqueue", *args, "--port", str(self.port), "--work-dir", str(self.work_dir)],
                              capture_output=True, text=True, env=self.env, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"juqueue {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def stop(self, timeout: float = 60) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.api("POST", "/api/stop", json={"cancel_jobs": True})
        except httpx.HTTPError:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def kill_leftovers(work_dir: Path) -> None:
    """Tests never leave processes behind: workers, runs and the embedded broker of a work dir."""
    me = os.getpid()
    needle = str(work_dir).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = b""
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                pass
        except OSError:
            continue
        if needle in cmdline or needle in environ:
            try:
                os.kill(int(entry.name), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def assert_attempts_never_overlapped(server: Server, global_id: str) -> list[dict]:
    """At most one live attempt per run: each attempt ended before the next one started."""
    attempts = server.run(global_id)["attempts"]
    spans = sorted((a["started_at"], a["ended_at"]) for a in attempts if a["started_at"])
    for (_s1, e1), (s2, _e2) in zip(spans, spans[1:]):
        assert e1 is not None and e1 <= s2, f"{global_id}: attempts overlapped: {spans}"
    return attempts
