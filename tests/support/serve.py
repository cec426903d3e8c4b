"""Starting a `juqueue serve` subprocess and waiting until its API answers and its token is written."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from juqueue.paths import WorkDir


def serve_env(extra: dict[str, str] | None = None, drop: tuple[str, ...] = ("JUQUEUE_URL",)) -> dict[str, str]:
    """This environment for a `serve` child, without what would point it (or its CLI) at another server."""
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(extra or {})
    return env


def launch_serve(def_dir: Path, work_dir: Path, log_path: Path, *args: str,
                 env: dict[str, str] | None = None) -> subprocess.Popen:
    """`python -m juqueue serve --def-dir D --work-dir W ARGS...` in its own session, output appended to log_path."""
    cmd = [sys.executable, "-m", "juqueue", "serve", "--def-dir", str(def_dir), "--work-dir", str(work_dir), *args]
    return subprocess.Popen(cmd, stdout=open(log_path, "ab"), stderr=subprocess.STDOUT,
                            env=serve_env() if env is None else env, start_new_session=True)


def log_tail(log_path: Path, n: int = 4000) -> str:
    try:
        return log_path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def wait_serve_ready(proc: subprocess.Popen, url: str, work_dir: Path, log_path: Path, timeout: float = 60,
                     error: type[Exception] = AssertionError) -> None:
    """Until GET /health answers 200, the token file exists and the first reload is over (`/api/status` key
    `loading`); `error` with the log's tail if serve
    exits or does not answer within `timeout` s."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise error(f"serve exited with {proc.returncode}:\n{log_tail(log_path)}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200 and WorkDir(work_dir).token_file.exists():
                token = WorkDir(work_dir).token_file.read_text().strip()
                status = httpx.get(url + "/api/status", headers={"Authorization": f"Bearer {token}"}, timeout=10)
                if status.status_code == 200 and not status.json().get("loading"):  # the first reload is over
                    return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise error(f"serve did not answer within {timeout} s:\n{log_tail(log_path)}")
