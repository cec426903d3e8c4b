"""A shared login node: another Unix user, loopback, `ps`."""

from __future__ import annotations

import subprocess

from helpers import Server, ensure_other_user, write_defs
from juqueue.paths import WorkDir

PROTECTED = [
    ("GET", "/api/runs"), ("GET", "/api/status"), ("GET", "/api/nodes"), ("GET", "/api/runs/s@sleeper"),
    ("GET", "/api/runs/s@sleeper/logs"), ("POST", "/api/runs/cancel"), ("POST", "/api/runs/requeue"),
    ("POST", "/api/reload"), ("POST", "/api/stop"),
]


def test_other_user_gets_401_and_no_secret_is_in_process_arguments(workspace):
    user = ensure_other_user()
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
        wd = WorkDir(work)
        for secret in (wd.token_file, wd.broker_url_file, wd.broker_dir / "broker.json", wd.broker_dir / "valkey.conf", wd.state_dir):
            assert secret.stat().st_mode & 0o077 == 0, f"{secret} is readable by others"
        # The other user speaks plain HTTP with bash's /dev/tcp (our interpreter lives under /root).
        for method, path in PROTECTED + [("GET", "/health")]:
            request = f"{method} {path} HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\nContent-Length: 2\\r\\nContent-Type: application/json\\r\\n\\r\\n{{}}"
            script = f'exec 3<>/dev/tcp/127.0.0.1/{server.port}; printf "{request}" >&3; head -n 1 <&3'
            out = subprocess.run(["runuser", "-u", user, "--", "bash", "-c", script], capture_output=True, text=True, timeout=30, cwd="/tmp")
            assert out.returncode == 0, out.stderr
            code = out.stdout.split()[1]
            expected = "200" if path == "/health" else "401"
            assert code == expected, f"{method} {path} answered {code} to another user"
        # Nobody's arguments carry a secret: `ps` is readable by every user.
        token = server.token
        password = __import__("json").loads((wd.broker_dir / "broker.json").read_text())["password"]
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert token not in ps
        assert password not in ps
    finally:
        server.stop()
