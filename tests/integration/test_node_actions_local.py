"""A user's drain and stop of a live local node (`juqueue node drain|stop`), real serve, broker
and workers: a drained node takes no new run and is released once empty; a stopped node's runs
are interrupted, queued again without spending a retry, and complete on another node."""

from __future__ import annotations

import time

import pytest

from helpers import Server, write_defs

LIVE = ("pending", "starting", "up", "draining", "stopping")


def _cluster(max_jobs: int) -> str:
    return f"""
local:
  type: local
  num_slots: 2
  max_jobs: {max_jobs}
  idle_timeout: 60
  grace_period: 3
  heartbeat_interval: 1
  consolidation: idle
"""


def _runs(n: int, seconds: int) -> str:
    lines = ["experiment: n", "cluster: local", "runs:"]
    lines += [f"  - {{id: r{i}, cmd: [sleep, '{seconds}'], max_retries: 0}}" for i in range(n)]
    return "\n".join(lines) + "\n"


def _nodes(server: Server) -> dict[str, dict]:
    return {n["name"]: n for n in server.api("GET", "/api/nodes", params={"ended_limit": 500}).json()}


def _wait_nodes(server: Server, predicate, what: str, timeout: float = 60) -> dict[str, dict]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        nodes = _nodes(server)
        if predicate(nodes):
            return nodes
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}: {nodes}\n{server.log.read_text()[-3000:]}")


def _attempt_nodes(server: Server, gid: str) -> list[str]:
    return [a["node"] for a in server.run(gid)["attempts"]]


@pytest.mark.slow(35)
def test_drained_node_takes_no_new_run_and_is_released_once_empty(workspace):
    """One node (max_jobs 1) of 2 slots, 4 runs: two run, two wait. Drained while the first two
    run, the node gets neither waiting run; once empty it is released, and only then a new node
    starts (max_jobs counts the draining one) and runs them."""
    defs = write_defs(workspace / "defs", _cluster(max_jobs=1), {"n.yaml": _runs(4, 15)})
    server = Server(defs, workspace / "work").start(tick=0.5)
    try:
        runs = server.wait_for(lambda rs: rs if sum(r["status"] == "running" for r in rs) == 2 else None, 60, "two running")
        first = sorted(r["global_id"] for r in runs if r["status"] == "running")
        waiting = sorted(r["global_id"] for r in runs if r["status"] == "queued")
        node = server.run(first[0])["node"]
        out = server.cli("node", "drain", node, "--reason", "test").stdout
        assert out.strip() == f"node {node}: draining (draining: drained by user (test))"
        status = server.api("GET", "/api/status").json()
        shown = [n for c in status["clusters"] for n in c["nodes"] if n["name"] == node]
        assert shown and shown[0]["state"] == "draining" and shown[0]["drained_by_user"] is True
        assert server.cli("node", "drain", node).stdout.startswith("unchanged: ")

        server.wait_for(lambda rs: all(r["status"] == "completed" for r in rs if r["global_id"] in first), 60,
                        "the drained node's runs completed")
        ended = _wait_nodes(server, lambda ns: ns[node]["state"] not in LIVE, "the drained node released", 60)
        assert ended[node]["live"] is False
        server.wait_all_final(90)
        runs = {r["global_id"]: r for r in server.runs()}
        assert {r["status"] for r in runs.values()} == {"completed"}
        for gid in waiting:
            assert node not in _attempt_nodes(server, gid), f"{gid} ran on the drained node"
            assert runs[gid]["attempt"] == 1
        # the drained node was released before anything else started: at most one node at a time
        started_after = [n for n in _nodes(server).values() if n["name"] != node]
        assert started_after and all((n["started_at"] or 0) >= (ended[node]["ended_at"] or 0) - 1 for n in started_after)
    finally:
        server.stop()


@pytest.mark.slow(40)
def test_stopped_node_requeues_its_runs_without_spending_retries(workspace):
    """Two nodes of 2 slots, 4 runs (max_retries 0). Stopping one node interrupts its two runs
    (node_stop); they are queued again with attempt 2, no retry spent, and complete elsewhere."""
    defs = write_defs(workspace / "defs", _cluster(max_jobs=2), {"n.yaml": _runs(4, 8)})
    server = Server(defs, workspace / "work").start(tick=0.5)
    try:
        runs = server.wait_for(lambda rs: rs if sum(r["status"] == "running" for r in rs) == 4 else None, 90, "four running")
        by_node: dict[str, list[str]] = {}
        for r in runs:
            by_node.setdefault(r["node"], []).append(r["global_id"])
        assert len(by_node) == 2
        node = sorted(by_node)[0]
        stopped = sorted(by_node[node])
        answer = server.api("POST", f"/api/nodes/{node}/stop", json={"reason": "maintenance"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["node"]["reason"] == "stopping: stopped by user (maintenance)"

        server.wait_all_final(120)
        runs = {r["global_id"]: r for r in server.runs()}
        assert {r["status"] for r in runs.values()} == {"completed"}, runs
        for gid in stopped:
            detail = server.run(gid)
            assert detail["attempt"] == 2 and detail["retries_used"] == 0, detail
            first, second = detail["attempts"]
            assert first["node"] == node and first["stop_reason"] == "node_stop"
            assert second["node"] != node and second["exit_code"] == 0
        assert _nodes(server)[node]["state"] not in LIVE
        again = server.api("POST", f"/api/nodes/{node}/stop")
        assert again.status_code == 409 and "has ended" in again.json()["detail"]
        missing = server.api("POST", "/api/nodes/no-such-node/drain")
        assert missing.status_code == 404
    finally:
        server.stop()
