"""The embedded broker ends with its work: after a `serve` killed without a word (SIGKILL), the
watcher beside the broker shuts it down once the grace (`--broker-grace`) has passed with no
server and no live node, and keeps its AOF; a `serve` restarted within the grace adopts it."""

from __future__ import annotations

import pytest

from helpers import Server, write_defs
from support.processes import pid_alive
from support.waiting import wait_until
from juqueue.paths import WorkDir, read_json

pytestmark = pytest.mark.integration

CLUSTERS = """
    local:
      type: local
      num_slots: 1
      max_jobs: 1
      idle_timeout: 1
      heartbeat_interval: 1
"""
RUNS = {"quick.yaml": """
    experiment: quick
    cluster: local
    cmd: ["true"]
    id: "q{i}"
    matrix:
      i: [0, 1]
"""}


def _broker_pid(work) -> int:
    return int(read_json(WorkDir(work).broker_dir / "broker.json")["pid"])


def _no_live_node(server: Server) -> bool:
    resp = server.api("GET", "/api/nodes")
    return resp.status_code == 200 and not any(n["live"] for n in resp.json())


@pytest.mark.slow(40)
def test_broker_of_a_killed_serve_ends_after_the_grace_and_keeps_its_aof(workspace):
    defs = write_defs(workspace / "defs", CLUSTERS, RUNS)
    work = workspace / "work"
    server = Server(defs, work, "--broker-grace", "3").start()
    server.wait_all_final(60)
    wait_until("the idle node to end", lambda: _no_live_node(server), 60)
    broker = _broker_pid(work)
    aof = WorkDir(work).broker_dir / "appendonlydir"
    server.kill()
    assert pid_alive(broker), "the broker must outlive a killed serve for a while (a restart adopts it)"
    wait_until("the orphaned broker to end", lambda: not pid_alive(broker), 40,
               detail=lambda: (WorkDir(work).broker_dir / "watcher.log").read_text()[-3000:])
    assert aof.is_dir() and any(aof.iterdir()), "the AOF must be kept"
    log = (WorkDir(work).broker_dir / "watcher.log").read_text()
    assert "shutting the broker down" in log, log

    # a later serve starts from the kept AOF: the runs stay completed, none reruns
    server = Server(defs, work, "--broker-grace", "3").start()
    try:
        runs = server.wait_all_final(60)
        assert [(r["status"], r["attempt"]) for r in runs] == [("completed", 1)] * 2, runs
    finally:
        server.stop()
    wait_until("the broker to stop with serve", lambda: not pid_alive(_broker_pid(work)), 20)


@pytest.mark.slow(30)
def test_serve_restarted_within_the_grace_adopts_the_broker(workspace):
    defs = write_defs(workspace / "defs", CLUSTERS, RUNS)
    work = workspace / "work"
    server = Server(defs, work, "--broker-grace", "120").start()
    server.wait_all_final(60)
    broker = _broker_pid(work)
    server.kill()
    server = Server(defs, work, "--broker-grace", "120").start()
    try:
        assert pid_alive(broker) and _broker_pid(work) == broker, "the restarted serve must adopt the running broker"
        assert "reusing the embedded broker" in server.log.read_text()
        runs = server.wait_all_final(60)
        assert all(r["status"] == "completed" for r in runs), runs
    finally:
        server.stop()
    wait_until("the adopted broker to stop with serve", lambda: not pid_alive(broker), 20)
