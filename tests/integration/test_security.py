"""A shared login node: another Unix user, loopback, `ps`."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import Server, write_defs

OTHER_USER = "jqother"


def _ensure_other_user() -> str:
    if os.geteuid() != 0:
        pytest.skip("needs root to create a second Unix user (useradd)")
    try:
        pwd.getpwnam(OTHER_USER)
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", OTHER_USER], check=True)
    return OTHER_USER


PROTECTED = [
    ("GET", "/api/runs"), ("GET", "/api/status"), ("GET", "/api/nodes"), ("GET", "/api/runs/s@sleeper"),
    ("GET", "/api/runs/s@sleeper/logs"), ("POST", "/api/runs/cancel"), ("POST", "/api/runs/requeue"),
    ("POST", "/api/reload"), ("POST", "/api/stop"),
]


def test_other_user_gets_401_and_no_secret_is_in_process_arguments(workspace):
    user = _ensure_other_user()
    defs = write_defs(workspace / "defs", """
        local:
          type: local
          num_slots: 1
          max_jobs: 1
    """, {"s.yaml": """
        experiment: s
        cluster: local
        runs: [{id: sleeper, cmd: ["sleep", "30"]}]
    """})
    work = workspace / "work"
    server = Server(defs, work).start()
    try:
        server.wait_for(lambda runs: runs and runs[0]["status"] == "running", 60, "running")
        # The token and the broker's secrets are readable by their owner only.
        for secret in (work / "token", work / "broker" / "url", work / "broker" / "broker.json", work / "broker" / "valkey.conf"):
            assert secret.stat().st_mode & 0o077 == 0, f"{secret} is readable by others"
        script = "import httpx,sys\n" + "\n".join(
            f"print({method!r}, {path!r}, httpx.request({method!r}, 'http://127.0.0.1:{server.port}{path}', json={{}}).status_code)"
            for method, path in PROTECTED
        ) + f"\nprint('GET', '/health', httpx.get('http://127.0.0.1:{server.port}/health').status_code)"
        script_path = Path("/tmp") / f"jq-other-{server.port}.py"
        script_path.write_text(script)
        script_path.chmod(0o644)
        import sys

        python = sys.executable
        # the other user runs the same interpreter (the venv is world-readable)
        out = subprocess.run(["runuser", "-u", user, "--", python, str(script_path)], capture_output=True, text=True, timeout=60, cwd="/tmp")
        assert out.returncode == 0, out.stderr
        lines = [line.split() for line in out.stdout.splitlines()]
        for method, path, code in lines:
            expected = "200" if path == "/health" else "401"
            assert code == expected, f"{method} {path} answered {code} to another user"
        # Nobody's arguments carry a secret: `ps` is readable by every user.
        token = server.token
        password = __import__("json").loads((work / "broker" / "broker.json").read_text())["password"]
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert token not in ps
        assert password not in ps
    finally:
        server.stop()
