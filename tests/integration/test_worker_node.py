"""A node's worker on its own, against a real Redis-compatible server: refusing a version
mismatch, giving up on an unreachable broker, and exiting when its controller is silent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from support.processes import free_port
from helpers import start_valkey

from juqueue.definitions.models import ClusterSpec
from juqueue.paths import WorkDir, write_atomic
from juqueue.version import __version__


def _node(work: WorkDir, broker_url: str, *, version: str = __version__, silence_s: float = 600.0) -> None:
    write_atomic(work.broker_url_file, broker_url + "\n", mode=0o600)
    cluster = ClusterSpec(name="local", type="local", num_slots=1, heartbeat_interval=0.5)
    write_atomic(work.node_dir("n1") / "node.json", json.dumps({
        "node": "n1", "token": "t", "namespace": "testns", "version": version, "cluster": cluster.model_dump(),
        "lease_ttl_s": 30, "controller_silence_s": silence_s,
    }))


def _start(work: WorkDir, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "juqueue.workers.node", "--work-dir", str(work.root), "--node", "n1", "--cluster", "local"],
                            env=dict(os.environ, **env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_worker_of_another_version_refuses_with_the_reason(tmp_path):
    port = free_port()
    server = start_valkey(port, tmp_path)
    try:
        work = WorkDir(tmp_path / "work")
        _node(work, f"redis://127.0.0.1:{port}/0", version="0.0.15")
        proc = _start(work)
        assert proc.wait(60) == 3
        reason = (work.node_dir("n1") / "failure").read_text()
        assert "0.0.15" in reason and __version__ in reason
    finally:
        server.kill()


def test_worker_that_cannot_reach_the_broker_gives_up(tmp_path):
    work = WorkDir(tmp_path / "work")
    _node(work, f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    started = time.time()
    proc = _start(work, JUQUEUE_BROKER_GIVE_UP_S="4")
    assert proc.wait(60) == 4
    assert time.time() - started < 30
    assert "could not reach the broker" in (work.node_dir("n1") / "failure").read_text()


def test_worker_exits_when_its_controller_is_silent_and_it_has_no_run(tmp_path):
    port = free_port()
    server = start_valkey(port, tmp_path)
    try:
        work = WorkDir(tmp_path / "work")
        _node(work, f"redis://127.0.0.1:{port}/0", silence_s=2)
        proc = _start(work)
        proc.wait(60)  # no controller ever set its alive key
        assert proc.returncode is not None
        out = proc.stdout.read()
        assert "Warm shutdown" in out or proc.returncode == 0, out[-2000:]
    finally:
        server.kill()
