"""The run engine end to end on a `local` cluster: real embedded broker, real Celery workers."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import REPO, Server, kill_leftovers, write_defs
from support.processes import pid_alive
from support.waiting import wait_until
from juqueue.paths import WorkDir

LOCAL_2x1 = """
local:
  type: local
  num_slots: 1
  max_jobs: 2
  idle_timeout: 60
  grace_period: 5
  heartbeat_interval: 1
  heartbeat_timeout: 10
"""


CODES = """
    experiment: codes
    cluster: local
    runs:
      - {id: ok, cmd: ["true"]}
      - {id: bad, cmd: ["sh", "-c", "exit 3"]}
      - {id: after_bad, cmd: ["true"], depends_on: [bad]}
      - {id: missing_binary, cmd: ["/nonexistent/binary"]}
      - {id: retried, cmd: ["sh", "-c", "n=$(cat $JUQUEUE_RUN_DIR/n 2>/dev/null || echo 0); echo $((n+1)) > $JUQUEUE_RUN_DIR/n; [ $n -ge 1 ]"], max_retries: 2}
"""


@pytest.fixture(scope="module")
def examples(tmp_path_factory) -> Iterator[Server]:
    """One serve for the tests that only read what it did (a serve start costs seconds of CPU): the
    shipped example definitions as they are, plus an experiment of exit codes on their `local` cluster."""
    root = tmp_path_factory.mktemp("examples")
    defs = root / "defs"
    shutil.copytree(REPO / "example_defs", defs)
    (defs / "codes.yaml").write_text(textwrap.dedent(CODES))
    server = Server(defs, root / "work").start()
    try:
        yield server
    finally:
        server.stop()
        kill_leftovers(root)


def test_example_definitions_run_end_to_end(examples):
    runs = [r for r in examples.wait_all_final(timeout=120) if r["experiment"] != "codes"]
    assert {r["status"] for r in runs} == {"completed"}, runs
    assert len(runs) == 15
    for r in runs:
        assert r["exit_code"] == 0 and r["attempt"] == 1
        assert r["queued_at"] and r["started_at"] and r["ended_at"]
        assert r["queued_at"] <= r["started_at"] <= r["ended_at"]
        log = WorkDir(examples.work_dir).attempt_log(r["experiment"], r["id"], 1, "out")
        assert log.exists(), log
    out = WorkDir(examples.work_dir).attempt_log("helloworld", "read_file", 1, "out").read_text()
    assert out.strip() == "done"
    detail = examples.run("helloworld@sleep_1")
    kinds = [e["kind"] for e in detail["events"]]
    assert kinds[:1] == ["defined"] and "assigned" in kinds and "running" in kinds and kinds[-1] == "completed"


def test_exit_codes_decide_completed_and_failed(examples):
    runs = {r["id"]: r for r in examples.wait_all_final(timeout=120) if r["experiment"] == "codes"}
    assert runs["ok"]["status"] == "completed"
    assert runs["bad"]["status"] == "failed" and runs["bad"]["exit_code"] == 3
    assert runs["after_bad"]["status"] == "failed" and "codes@bad" in runs["after_bad"]["reason"]
    assert runs["missing_binary"]["status"] == "failed" and runs["missing_binary"]["exit_code"] == 127
    assert runs["retried"]["status"] == "completed" and runs["retried"]["attempt"] == 2


def _running(server: Server, gid: str, attempt: int = 1):
    def check(runs):
        for r in runs:
            if r["global_id"] == gid and r["status"] == "running" and r["attempt"] == attempt:
                return r
        return None
    return server.wait_for(check, 60, f"{gid} running attempt {attempt}")


def test_worker_sigkill_kills_grandchildren_and_requeues(workspace):
    defs = write_defs(workspace / "defs", LOCAL_2x1, {
        "kill.yaml": """
            experiment: kill
            cluster: local
            runs:
              - id: victim
                cmd: ["bash", "-c", "if [ \\"$JUQUEUE_ATTEMPT\\" = 1 ]; then sleep 300 & echo $! > $JUQUEUE_RUN_DIR/grandchild.pid; wait; else echo second; fi"]
        """,
    })
    server = Server(defs, workspace / "work").start()
    try:
        run = _running(server, "kill@victim")
        run_dir = WorkDir(workspace / "work").run_dir("kill", "victim")
        wait_until("the grandchild's pid file", (run_dir / "grandchild.pid").exists, 10, 0.1)
        grandchild = int((run_dir / "grandchild.pid").read_text())
        first_node = run["node"]
        worker_pid = int((WorkDir(workspace / "work").node_dir(first_node) / "worker.pid").read_text())
        os.kill(worker_pid, signal.SIGKILL)
        runs = server.wait_all_final(timeout=90)
        assert not pid_alive(grandchild), "the run's grandchild survived its worker"
        victim = runs[0]
        assert victim["status"] == "completed" and victim["attempt"] == 2
        assert victim["node"] != first_node
        attempts = server.run("kill@victim")["attempts"]
        assert [a["number"] for a in attempts] == [1, 2]
        assert attempts[0]["end_reason"] == "interrupted"
        assert attempts[0]["ended_at"] <= attempts[1]["started_at"], "attempts overlapped"
    finally:
        server.stop()


CHECKPOINTING = """
    experiment: ckpt
    cluster: local
    runs:
      - id: counter
        # counts steps into a file, continues from the last one; exits 0 on SIGTERM (checkpointed)
        cmd: ["bash", "-c", "trap 'echo stopped >> $JUQUEUE_RUN_DIR/log; exit 0' TERM; n=$(cat $JUQUEUE_RUN_DIR/step 2>/dev/null || echo 0); while [ $n -lt STEPS ]; do n=$((n+1)); echo $n > $JUQUEUE_RUN_DIR/step; sleep 0.2 & wait $!; done"]
"""


@pytest.mark.slow(45)
def test_run_that_exits_0_on_sigterm_is_requeued_when_its_node_stops(workspace):
    defs = write_defs(workspace / "defs", LOCAL_2x1, {"ckpt.yaml": CHECKPOINTING.replace("STEPS", "40")})
    work = workspace / "work"
    server = Server(defs, work).start()
    _running(server, "ckpt@counter")
    step_file = WorkDir(work).run_dir("ckpt", "counter") / "step"

    def counted() -> int:
        text = step_file.read_text().strip() if step_file.exists() else ""
        return int(text) if text.isdigit() else 0
    wait_until("the counter to count a few steps", lambda: counted() >= 3, 30, 0.1)
    server.cli("stop")
    server.proc.wait(60)
    stopped_at = int(step_file.read_text())
    assert 0 < stopped_at < 40
    server = Server(defs, work, port=server.port).start()
    try:
        runs = server.wait_all_final(timeout=90)
        run = runs[0]
        assert run["status"] == "completed" and run["attempt"] == 2, run
        attempts = server.run("ckpt@counter")["attempts"]
        assert attempts[0]["end_reason"] == "interrupted" and attempts[0]["exit_code"] == 0
        assert int(step_file.read_text()) == 40
        assert "stopped" in (WorkDir(work).run_dir("ckpt", "counter") / "log").read_text()
    finally:
        server.stop()


@pytest.mark.slow(30)
def test_controller_sigkill_and_restart_never_reruns_completed(workspace):
    runs_yaml = """
        experiment: many
        cluster: local
        cmd: ["sh", "-c", "echo $JUQUEUE_ATTEMPT >> $JUQUEUE_RUN_DIR/executions; sleep 1"]
        id: "r{i}"
        matrix:
          i: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    """
    defs = write_defs(workspace / "defs", LOCAL_2x1.replace("num_slots: 1", "num_slots: 2"), {"many.yaml": runs_yaml})
    work = workspace / "work"
    server = Server(defs, work).start()
    done_before = server.wait_for(lambda runs: [r for r in runs if r["status"] == "completed"] if sum(r["status"] == "completed" for r in runs) >= 3 else None, 60, "3 completed")
    server.kill()  # SIGKILL to the whole serve process group (workers live in their own sessions)
    # Celery beat serves only that serve: it ends with it.
    wait_until("celery beat to end with its serve", lambda: not _processes_with(str(work), "juqueue.controller.beat"), 15, 0.2)
    server = Server(defs, work, port=server.port).start()
    try:
        runs = {r["global_id"]: r for r in server.wait_all_final(timeout=120)}
        assert all(r["status"] == "completed" for r in runs.values()), runs
        for r in done_before:
            assert runs[r["global_id"]]["attempt"] == r["attempt"], "a completed run ran again"
            executions = (WorkDir(work).run_dir("many", r["id"]) / "executions").read_text().split()
            assert len(executions) == 1, executions
    finally:
        server.stop()


def _processes_with(*needles: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if all(n in cmdline for n in needles) and pid_alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def test_second_serve_on_the_same_work_dir_refuses(examples):
    second = subprocess.run(
        [sys.executable, "-m", "juqueue", "serve", "--def-dir", str(examples.def_dir), "--work-dir", str(examples.work_dir)],
        capture_output=True, text=True, timeout=60,
    )
    assert second.returncode != 0
    assert "in use" in second.stderr and str(examples.work_dir) in second.stderr
    assert examples.proc.poll() is None, "the first serve must keep running"


def test_celery_inspect_active_lists_running_runs(workspace):
    defs = write_defs(workspace / "defs", LOCAL_2x1, {"slow.yaml": """
        experiment: slow
        cluster: local
        runs: [{id: sleeper, cmd: ["sleep", "30"]}]
    """})
    work = workspace / "work"
    server = Server(defs, work).start()
    try:
        _running(server, "slow@sleeper")
        env = dict(os.environ, JUQUEUE_WORK_DIR=str(work))
        out = subprocess.run([sys.executable, "-m", "celery", "-A", "juqueue.workers.app", "inspect", "active", "--timeout", "5"],
                             capture_output=True, text=True, env=env, timeout=60)
        assert "slow@sleeper" in out.stdout, out.stdout + out.stderr
        server.cli("cancel", "slow@sleeper")
        runs = server.wait_all_final(timeout=60)
        assert runs[0]["status"] == "cancelled"
    finally:
        server.stop()
