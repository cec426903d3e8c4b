"""Redis restarted empty while runs run: a server this test starts itself (never the shared one)."""

from __future__ import annotations

import pytest

from helpers import Server, assert_attempts_never_overlapped, start_valkey, write_defs
from support.processes import free_port
from juqueue.paths import WorkDir


def test_redis_restarted_empty_loses_no_run_and_reruns_none(workspace):
    port = free_port()
    redis_proc = start_valkey(port, workspace)
    defs = write_defs(workspace / "defs", """
        local:
          type: local
          num_slots: 2
          max_jobs: 2
          idle_timeout: 60
          heartbeat_interval: 1
          heartbeat_timeout: 20
    """, {"r.yaml": """
        experiment: r
        cluster: local
        cmd: ["sh", "-c", "echo $JUQUEUE_ATTEMPT >> $JUQUEUE_RUN_DIR/executions; sleep 3"]
        id: "r{i}"
        matrix:
          i: [0, 1, 2, 3, 4, 5, 6, 7]
    """})
    work = workspace / "work"
    server = Server(defs, work, "--broker", f"redis://127.0.0.1:{port}/0").start()
    try:
        server.wait_for(lambda runs: sum(r["status"] == "running" for r in runs) >= 2, 60, "runs running")
        before = {r["global_id"]: r for r in server.runs()}
        redis_proc.kill()
        redis_proc.wait()
        redis_proc = start_valkey(port, workspace)  # back, and empty
        runs = {r["global_id"]: r for r in server.wait_all_final(timeout=180)}
        assert all(r["status"] == "completed" for r in runs.values()), runs
        for gid, r in before.items():
            if r["status"] == "completed":
                assert runs[gid]["attempt"] == r["attempt"], f"{gid} ran again after it completed"
        for r in runs.values():
            lines = (WorkDir(work).run_dir("r", r["id"]) / "executions").read_text().split()
            # a run may have been interrupted and resumed, but it never ran twice at once
            attempts = assert_attempts_never_overlapped(server, r["global_id"])
            assert len(lines) == sum(1 for a in attempts if a["started_at"])
    finally:
        server.stop()
        redis_proc.kill()


@pytest.mark.slow(30)
def test_embedded_broker_killed_is_restarted_and_runs_finish(workspace):
    import json
    import os
    import signal

    defs = write_defs(workspace / "defs", """
        local:
          type: local
          num_slots: 2
          max_jobs: 2
          idle_timeout: 60
          heartbeat_interval: 1
          heartbeat_timeout: 30
    """, {"e.yaml": """
        experiment: e
        cluster: local
        cmd: ["sh", "-c", "echo $JUQUEUE_ATTEMPT >> $JUQUEUE_RUN_DIR/executions; sleep 4"]
        id: "r{i}"
        matrix:
          i: [0, 1, 2, 3, 4, 5]
    """})
    work = workspace / "work"
    server = Server(defs, work).start()
    try:
        server.wait_for(lambda runs: sum(r["status"] == "running" for r in runs) >= 2, 60, "runs running")
        state = json.loads((WorkDir(work).broker_dir / "broker.json").read_text())
        os.kill(state["pid"], signal.SIGKILL)
        runs = server.wait_all_final(timeout=180)
        assert all(r["status"] == "completed" for r in runs), runs
        new_state = json.loads((WorkDir(work).broker_dir / "broker.json").read_text())
        assert new_state["pid"] != state["pid"] and new_state["port"] == state["port"]
        for r in runs:
            assert_attempts_never_overlapped(server, r["global_id"])
    finally:
        server.stop()
