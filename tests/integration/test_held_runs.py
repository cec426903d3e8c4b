"""Held runs on a real local cluster: --hold-new starts nothing until release; hold keeps queued
runs from starting; resume --completed reruns a completed run with the next attempt number."""

from __future__ import annotations

import time

import pytest

from helpers import Server, write_defs

CLUSTER = """
local:
  type: local
  num_slots: 2
  max_jobs: 1
  idle_timeout: 2
  heartbeat_interval: 1
"""

RUNS = """
experiment: h
cluster: local
runs:
  - {id: a, cmd: ["true"]}
  - {id: b, cmd: ["true"]}
  - {id: c, cmd: ["true"], hold: true}
"""


def _nodes(server: Server) -> list[dict]:
    return server.api("GET", "/api/nodes").json()


@pytest.mark.slow(40)
def test_hold_new_release_hold_and_resume_completed(workspace):
    defs = write_defs(workspace / "defs", CLUSTER, {"h.yaml": RUNS})
    server = Server(defs, workspace / "work", "--hold-new").start(tick=0.5)
    try:
        server.wait_for(lambda runs: len(runs) == 3, 30, "3 runs")
        time.sleep(4)
        assert {r["status"] for r in server.runs()} == {"held"}
        assert _nodes(server) == [], "held runs started a node"
        out = server.cli("hold", "--status", "held").stdout  # nothing queued: all skipped, no error
        assert "held 0" in out
        server.cli("release", "h@a")
        server.wait_for(lambda runs: any(r["id"] == "a" and r["status"] == "completed" for r in runs), 60, "a completed")
        assert {r["id"]: r["status"] for r in server.runs()}["b"] == "held"
        # `c` defines hold: true itself; `b` came in held by --hold-new: release everything but hold b again first
        server.cli("release", "h@b", "h@c")
        server.cli("hold", "h@b")  # b may be queued (or already placed): if queued it must not start
        server.wait_for(lambda rs: all(r["status"] in ("completed", "held") for r in rs)
                        and any(r["id"] == "c" and r["status"] == "completed" for r in rs), 60, "c completed")
        b = server.run("h@b")
        if b["status"] == "held":
            time.sleep(3)
            assert server.run("h@b")["status"] == "held" and server.run("h@b")["attempt"] == 0
        assert server.cli("resume", check=False).returncode != 0  # a call without a selection is an error
        server.cli("resume", "h@a", "--completed")
        server.wait_for(lambda rs: any(r["id"] == "a" and r["status"] == "completed" and r["attempt"] == 2 for r in rs),
                        60, "a rerun as attempt 2")
        kinds = [e["kind"] for e in server.run("h@a")["events"]]
        assert kinds.count("completed") == 2 and "requeued" in kinds
    finally:
        server.stop()
