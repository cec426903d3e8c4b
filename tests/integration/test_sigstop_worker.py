"""A node frozen (its worker and its run SIGSTOPped) for longer than the heartbeat timeout: the
run is restarted on another node, and the frozen attempt, once continued, never writes a result
(no tick, no end, no exit file of its own): attempts never overlap."""

from __future__ import annotations

import json
import os
import signal

import pytest

from helpers import Server, assert_attempts_never_overlapped, write_defs
from support.processes import pid_alive
from support.waiting import wait_until
from juqueue.paths import WorkDir

pytestmark = pytest.mark.integration

CLUSTERS = """
    local:
      type: local
      num_slots: 1
      max_jobs: 2
      idle_timeout: 60
      heartbeat_interval: 1
      heartbeat_timeout: 4
"""
# ticks (attempt, time) into the run dir; the attempt that reaches 30 writes "done"
TICKER = """
    experiment: frozen
    cluster: local
    id: ticker
    cmd: ["sh", "-c", "echo $$ > $JUQUEUE_RUN_DIR/pid.$JUQUEUE_ATTEMPT; i=0; while [ $i -lt 30 ]; do i=$((i+1)); echo \\"$JUQUEUE_ATTEMPT $(date +%s.%N)\\" >> $JUQUEUE_RUN_DIR/ticks; sleep 0.3; done; echo \\"$JUQUEUE_ATTEMPT done $(date +%s.%N)\\" >> $JUQUEUE_RUN_DIR/ticks"]
"""


def _signal(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False


@pytest.mark.slow(40)
def test_a_worker_stopped_past_its_heartbeat_timeout_is_replaced_and_fenced(workspace):
    defs = write_defs(workspace / "defs", CLUSTERS, {"frozen.yaml": TICKER})
    work = WorkDir(workspace / "work")
    server = Server(defs, workspace / "work", "--lease-ttl", "6").start()
    run_dir = work.run_dir("frozen", "ticker")
    try:
        first = server.wait_for(lambda runs: runs[0] if runs and runs[0]["status"] == "running" else None, 60,
                                "the first attempt running")
        wait_until("the first attempt's pid", (run_dir / "pid.1").exists, 10, 0.1)
        worker = int((work.node_dir(first["node"]) / "worker.pid").read_text())
        run_pid = int((run_dir / "pid.1").read_text())
        os.kill(worker, signal.SIGSTOP)  # the whole node freezes: its worker and its run
        os.kill(run_pid, signal.SIGSTOP)
        frozen_ticks = (run_dir / "ticks").read_text().count("\n")

        def restarted():
            run = server.run("frozen@ticker")
            return run if run["attempt"] >= 2 and run["status"] in ("running", "completed") else None
        second = server.wait_for(lambda _runs: restarted(), 90, "the run restarted on another node")
        assert second["node"] != first["node"], (first, second)
        # thawed: whatever of the frozen node still lives continues now
        continued = [_signal(pid, signal.SIGCONT) for pid in (run_pid, worker)]
        runs = server.wait_all_final(timeout=90)
        detail = server.run("frozen@ticker")
        assert_attempts_never_overlapped(server, "frozen@ticker")
    finally:
        server.stop()
    assert runs[0]["status"] == "completed" and runs[0]["attempt"] == 2, runs
    attempts = detail["attempts"]
    assert [a["number"] for a in attempts] == [1, 2] and attempts[0]["end_reason"] == "interrupted", attempts
    assert attempts[0]["exit_code"] != 0 or attempts[0]["end_reason"] == "interrupted"
    lines = (run_dir / "ticks").read_text().splitlines()
    first_lines = [line for line in lines if line.startswith("1 ")]
    assert len(first_lines) <= frozen_ticks + 1, f"the frozen attempt ticked after it was replaced: {lines}"
    assert not any(line.startswith("1 done") for line in lines), "the frozen attempt wrote a result"
    second_start = min(float(line.split()[1]) for line in lines if line.startswith("2 ") and "done" not in line)
    assert all(float(line.split()[-1]) < second_start for line in first_lines), "the attempts overlapped"
    assert not work.exit_file("frozen", "ticker", 1).exists() or \
        json.loads(work.exit_file("frozen", "ticker", 1).read_text()).get("exit_code") != 0
    assert not pid_alive(run_pid) and not pid_alive(worker), f"the frozen node outlived its replacement (continued: {continued})"
