"""The work dir with a real `juqueue serve`: a work dir of the previous layout migrated and served
(nothing reruns), refused while a SLURM job of it lives; the API on a private Unix socket; no API
at all with `--port -1`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest

from helpers import FINAL, REPO, V1_FINISHED, Server, brief, ensure_other_user, write_defs
from support.processes import free_port
from support.serve import launch_serve, log_tail, serve_env
from support.waiting import wait_until
from slurm_helpers import require_slurm, slurm_jobs  # noqa: F401  (fixture)
from juqueue.paths import WorkDir

FIXTURES = REPO / "tests" / "fixtures"

LOCAL = """
local:
  type: local
  num_slots: 2
  max_jobs: 1
  idle_timeout: 5
  heartbeat_interval: 1
"""
QUICK = """
experiment: quick
cluster: local
runs:
  - {id: a, cmd: ["sh", "-c", "echo a"]}
  - {id: b, cmd: ["sh", "-c", "echo b > out.txt"]}
  - {id: c, cmd: ["sleep", "1"]}
"""


# ---------------------------------------------------------------------- helpers
def previous_layout(workspace: Path, broker_port: int | None = None) -> tuple[Path, Path]:
    """A work dir as the release before `.juqueue/` left it: the v1 store at W/juqueue.db, the
    token, a stale server.json and lock, broker state, a node's log, run logs and a checkpoint
    under W/runs/. The definitions are the ones the store was made from, except that the
    queued `interrupted` run now reads its checkpoint."""
    defs = workspace / "defs"
    shutil.copytree(FIXTURES / "store_v1_defs", defs, dirs_exist_ok=True)
    legacy_yaml = defs / "legacy.yaml"
    legacy_yaml.write_text(legacy_yaml.read_text().replace(
        '{id: interrupted, cmd: ["sh", "-c", "echo interrupted before"]}',
        '{id: interrupted, cmd: ["sh", "-c", "cat ckpt; echo resumed"]}'))
    work = workspace / "work"
    work.mkdir()
    conn = sqlite3.connect(work / "juqueue.db")
    conn.executescript((FIXTURES / "store_v1.sql").read_text())
    conn.close()
    (work / "token").write_text("token-of-the-previous-layout\n")
    os.chmod(work / "token", 0o600)
    (work / "server.json").write_text(json.dumps({"url": "http://127.0.0.1:9", "port": 9, "pid": 999999}))
    (work / "juqueue.lock").write_text("host=elsewhere pid=999999\n")
    if broker_port is not None:
        (work / "broker").mkdir(mode=0o700)
        (work / "broker" / "broker.json").write_text(json.dumps({"port": broker_port, "password": "pw-of-the-previous-layout"}))
    (work / "nodes" / "local-000000001-1").mkdir(parents=True)
    (work / "nodes" / "local-000000001-1" / "worker.log").write_text("worker of the previous layout\n")
    for run, attempt, text in (("ok_first", 1, "first"), ("ok_retried", 2, "retried"), ("interrupted", 1, "")):
        logs = work / "runs" / "legacy" / run / "logs"
        logs.mkdir(parents=True)
        (logs / f"attempt-{attempt}.out").write_text(text + "\n" if text else "")
    (work / "runs" / "legacy" / "interrupted" / "ckpt").write_text("checkpoint step 41\n")
    return defs, work


def start_serve(defs: Path, work: Path, *extra: str) -> tuple[subprocess.Popen, Path]:
    log = work.parent / f"serve-{work.name}.log"
    env = serve_env(drop=("JUQUEUE_URL", "JUQUEUE_TOKEN", "JUQUEUE_WORK_DIR"))
    return launch_serve(defs, work, log, "--tick-interval", "1", *extra, env=env), log


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = serve_env(drop=("JUQUEUE_URL", "JUQUEUE_TOKEN", "JUQUEUE_WORK_DIR"))
    return subprocess.run([sys.executable, "-m", "juqueue", *args], capture_output=True, text=True, env=env, timeout=120,
                          cwd=cwd)


def tcp_listeners(pid: int) -> list[str]:
    """Local addresses of the TCP sockets in LISTEN state that process `pid` holds."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            link = os.readlink(fd)
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[len("socket:["):-1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            if parts[3] == "0A" and parts[9] in inodes:  # 0A: LISTEN
                found.append(parts[1])
    return found


def store_statuses(work: Path) -> dict[str, str]:
    """Run statuses read straight from the store; empty while `serve` is still creating it."""
    conn = sqlite3.connect(f"file:{WorkDir(work).db_file}?mode=ro", uri=True, timeout=30)
    try:
        return dict(conn.execute("SELECT global_id, status FROM runs").fetchall())
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return {}
        raise
    finally:
        conn.close()


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait(10)


# ---------------------------------------------------------------------- the previous layout
@pytest.mark.slow(40)
def test_previous_layout_is_migrated_and_served_nothing_reruns(workspace):
    broker_port = free_port()
    defs, work = previous_layout(workspace, broker_port)
    server = Server(defs, work).start()
    try:
        runs = server.wait_for(lambda rs: rs if len(rs) == 7 and all(r["status"] in FINAL for r in rs) else None, 120,
                               "the queued runs to finish")
        by_id = {r["global_id"]: r for r in runs}
        # Finished under the previous layout: exactly as they were, not rerun.
        assert {gid: brief(by_id[gid]) for gid in V1_FINISHED} == V1_FINISHED
        # Queued ones ran, the interrupted one from the checkpoint that moved with its directory.
        assert by_id["legacy@waiting"]["status"] == "completed"
        assert by_id["legacy@interrupted"]["status"] == "completed" and by_id["legacy@interrupted"]["attempt"] == 2
        wd = WorkDir(work)
        assert wd.attempt_log("legacy", "interrupted", 2, "out").read_text() == "checkpoint step 41\nresumed\n"
        # Old output is where the API looks now; the token, broker and node logs kept.
        assert server.cli("logs", "legacy@ok_first").stdout == "first\n"
        assert server.cli("logs", "legacy@ok_retried").stdout == "retried\n"
        assert server.token == "token-of-the-previous-layout"
        broker = json.loads((wd.broker_dir / "broker.json").read_text())
        assert broker["port"] == broker_port and broker["password"] == "pw-of-the-previous-layout"
        assert (wd.node_dir("local-000000001-1") / "worker.log").read_text() == "worker of the previous layout\n"
        # The top of the work dir holds experiments only.
        assert sorted(p.name for p in work.iterdir()) == [".juqueue", "legacy"]
        assert stat.S_IMODE(wd.state_dir.stat().st_mode) == 0o700
        attempts = {gid: len(server.run(gid)["attempts"]) for gid in by_id}
        assert attempts["legacy@ok_first"] == 1 and attempts["legacy@ok_retried"] == 2
    finally:
        server.stop()
    log = server.log.read_text()
    assert "work dir migration: moved" in log and f"{work}: migrated" in log, log[-3000:]
    # A second start finds the layout current and reruns nothing.
    server = Server(defs, work).start()
    try:
        again = {r["global_id"]: (r["status"], r["attempt"]) for r in server.runs()}
        assert again == {gid: (r["status"], r["attempt"]) for gid, r in by_id.items()}
    finally:
        server.stop()
    assert server.log.read_text().count(f"{work}: migrated") == 1


@pytest.mark.slurm
def test_migration_is_refused_while_a_slurm_job_of_the_work_dir_lives(workspace, slurm_jobs):
    require_slurm()
    defs, work = previous_layout(workspace)
    out = subprocess.run(["sbatch", "--parsable", f"--job-name={slurm_jobs}-x", "--output=/dev/null", "--wrap", "sleep 300"],
                         capture_output=True, text=True, timeout=60, check=True)
    job_id = out.stdout.strip().split(";")[0]
    conn = sqlite3.connect(work / "juqueue.db")
    conn.execute("INSERT INTO nodes (name, cluster, backend, token, state, slots_total, job_id, created_at) "
                 "VALUES ('hpc-1', 'hpc', 'slurm', 'tok-hpc-1', 'up', 1, ?, 0)", (job_id,))
    conn.commit()
    conn.close()
    before = sorted(str(p.relative_to(work)) for p in work.rglob("*"))
    proc, log = start_serve(defs, work, "--port", str(free_port()))
    assert proc.wait(120) == 2
    text = log.read_text()
    assert "SLURM jobs of it are still alive" in text and f"hpc-1 (job {job_id})" in text and "Traceback" not in text
    assert sorted(str(p.relative_to(work)) for p in work.rglob("*") if p.name != ".juqueue" and ".juqueue" not in p.parts) == before
    subprocess.run(["scancel", job_id], capture_output=True, timeout=30)
    wait_until("the job to end", lambda: not subprocess.run(["squeue", "-h", "-j", job_id, "-t", "PD,R,CG"], capture_output=True,
                                                              text=True).stdout.strip(), 60)
    server = Server(defs, work).start()  # the job is gone: migrated
    try:
        server.wait_for(lambda rs: len(rs) == 7 and all(r["status"] in FINAL for r in rs), 120, "the runs")
    finally:
        server.stop()
    assert sorted(p.name for p in work.iterdir()) == [".juqueue", "legacy"]


# ---------------------------------------------------------------------- --unix-socket and --port -1
def test_unix_socket_api_is_private_and_the_cli_uses_it(workspace):
    other = ensure_other_user()
    defs = write_defs(workspace / "defs", LOCAL, {"quick.yaml": QUICK})
    work = workspace / "work"
    sock_dir = Path(tempfile.mkdtemp(prefix="jq-sock-", dir="/tmp"))
    os.chmod(sock_dir, 0o755)  # others may reach the socket: only its own mode keeps them out
    sock = sock_dir / "api.sock"
    proc, log = start_serve(defs, work, "--unix-socket", str(sock))
    try:
        recorded = wait_until("server.json", lambda: json.loads(WorkDir(work).server_file.read_text())
                              if WorkDir(work).server_file.exists() else None, 60, detail=lambda: log_tail(log))
        assert recorded["url"] == f"unix:{sock}" and recorded["unix_socket"] == str(sock) and recorded["port"] is None
        assert stat.S_ISSOCK(sock.lstat().st_mode) and stat.S_IMODE(sock.lstat().st_mode) == 0o600
        assert tcp_listeners(proc.pid) == [], "--unix-socket alone opened a TCP port"
        http = httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), base_url="http://juqueue", timeout=10)
        assert http.get("/health").status_code == 200
        assert http.get("/api/runs").status_code == 401  # the token is still asked for

        # The owner's CLI finds the socket from the work dir (option, or the current directory).
        wait_until("runs final", lambda: (r := cli("runs", "--json", "--work-dir", str(work))).returncode == 0
                   and len(json.loads(r.stdout)) == 3 and all(x["status"] in FINAL for x in json.loads(r.stdout)), 90,
                   detail=lambda: log_tail(log))
        status = cli("status", "--work-dir", str(work))
        assert status.returncode == 0, status.stderr
        assert "Runs" in status.stdout and "completed" in status.stdout
        from_run_dir = cli("status", "--json", cwd=WorkDir(work).run_dir("quick", "b"))
        assert from_run_dir.returncode == 0 and json.loads(from_run_dir.stdout)["counts"]["completed"] == 3
        assert (WorkDir(work).run_dir("quick", "b") / "out.txt").read_text() == "b\n"

        # Another Unix user cannot connect at all, token or not; a 0666 socket beside it they can.
        open_sock = sock_dir / "open.sock"
        listener = __import__("socket").socket(__import__("socket").AF_UNIX)
        listener.bind(str(open_sock))
        os.chmod(open_sock, 0o666)
        listener.listen(1)
        connect = "import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); print('connected')"
        try:
            control = subprocess.run(["runuser", "-u", other, "--", "/usr/bin/python3", "-c", connect, str(open_sock)],
                                     capture_output=True, text=True, timeout=30, cwd="/tmp")
            assert control.returncode == 0 and "connected" in control.stdout, control.stderr
        finally:
            listener.close()
        denied = subprocess.run(["runuser", "-u", other, "--", "/usr/bin/python3", "-c", connect, str(sock)],
                                capture_output=True, text=True, timeout=30, cwd="/tmp")
        assert denied.returncode != 0 and "PermissionError" in denied.stderr, (denied.stdout, denied.stderr)

        stopped = cli("stop", "--work-dir", str(work))
        assert stopped.returncode == 0 and f"unix:{sock}" in stopped.stdout, stopped.stderr
        assert proc.wait(60) == 0
        assert not sock.exists() and not WorkDir(work).server_file.exists()
    finally:
        stop(proc)
        shutil.rmtree(sock_dir, ignore_errors=True)


def test_port_minus_one_runs_without_an_api(workspace):
    defs = write_defs(workspace / "defs", LOCAL, {"quick.yaml": QUICK})
    work = workspace / "work"
    proc, log = start_serve(defs, work, "--port", "-1")
    try:
        wait_until("runs final", lambda: WorkDir(work).db_file.exists() and (s := store_statuses(work))
                   and len(s) == 3 and all(v == "completed" for v in s.values()), 90,
                   detail=lambda: log_tail(log))
        assert proc.poll() is None, "serve without an API must keep running"
        assert tcp_listeners(proc.pid) == [], "--port -1 opened a TCP port"
        recorded = json.loads(WorkDir(work).server_file.read_text())
        assert recorded["api"] is False and recorded["url"] is None and recorded["pid"] == proc.pid
        assert (WorkDir(work).run_dir("quick", "b") / "out.txt").read_text() == "b\n"
        status = cli("status", "--work-dir", str(work))
        assert status.returncode == 2 and "without an API" in status.stderr and f"kill {proc.pid}" in status.stderr
        assert "Dashboard" not in log.read_text() and "without an API" in log.read_text()
        assert stop(proc, signal.SIGINT) == 0
        assert not WorkDir(work).server_file.exists()
    finally:
        stop(proc)
