"""Flower sees the same Celery app, behind a password that is on no command line."""

from __future__ import annotations

import subprocess

import httpx

from helpers import Server, write_defs
from support.processes import free_port
from support.waiting import wait_until
from juqueue.paths import WorkDir


def test_flower_lists_the_workers_and_asks_for_a_password(workspace):
    defs = write_defs(workspace / "defs", """
        local:
          type: local
          num_slots: 2
          max_jobs: 1
          idle_timeout: 60
    """, {"s.yaml": """
        experiment: s
        cluster: local
        runs: [{id: sleeper, cmd: ["sleep", "90"]}]
    """})
    flower_port = free_port()
    server = Server(defs, workspace / "work", "--flower-port", str(flower_port)).start()
    try:
        run = server.wait_for(lambda runs: runs[0] if runs and runs[0]["status"] == "running" else None, 60, "running")
        base = f"http://127.0.0.1:{flower_port}/flower"

        def workers() -> dict | None:
            try:
                resp = httpx.get(base + "/api/workers?refresh=1", auth=("juqueue", server.token), timeout=30)
            except httpx.HTTPError:
                return None
            return resp.json() if resp.status_code == 200 and any(run["node"] in name for name in resp.json()) else None
        wait_until("Flower to list the run's worker", workers, 80, 1,
                   detail=lambda: WorkDir(workspace / "work").flower_log.read_text()[-3000:])
        assert httpx.get(base + "/api/workers", timeout=10).status_code == 401
        assert server.token not in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        status = server.api("GET", "/api/status").json()
        assert status["flower_url"] == f"http://127.0.0.1:{flower_port}/flower"
    finally:
        server.stop()
