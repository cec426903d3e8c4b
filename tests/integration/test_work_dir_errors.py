"""A work dir that refuses writes interrupts attempts (never fails runs) and pauses the cluster
until writes work again; then every run completes. Real serve, real workers, a real tmpfs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from helpers import Server, write_defs
from support.waiting import wait_until
from juqueue.paths import WorkDir

CLUSTER = """
local:
  type: local
  num_slots: 2
  max_jobs: 1
  idle_timeout: 60
  grace_period: 5
  heartbeat_interval: 1
  heartbeat_timeout: 20
"""

RUNS = """
experiment: quiet
cluster: local
runs:
""" + "".join(f"  - {{id: r{i}, cmd: [sleep, '0.3']}}\n" for i in range(6))


def _mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], check=True)


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(path: Path) -> Path:
    filler = path / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def _paused_reasons(server: Server) -> list[str]:
    status = server.api("GET", "/api/status").json()
    return [c["paused_reason"] for c in status["clusters"] if c.get("paused_reason")]


@pytest.fixture
def root_mounts():
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("CI runs as root: mounting a tmpfs must work here")
        pytest.skip("needs root to mount a tmpfs")
    mounted: list[Path] = []
    yield mounted
    for path in mounted:
        _umount(path)


@pytest.mark.parametrize("outage", ["read-only", "full"])
def test_work_dir_outage_interrupts_and_pauses_then_all_complete(workspace, root_mounts, outage):
    defs = write_defs(workspace / "defs", CLUSTER, {"quiet.yaml": RUNS})
    work = workspace / "work"
    runs_dir = WorkDir(work).experiment_dir("quiet")  # the experiment's run directories
    _mount_tmpfs(runs_dir, "256k")
    root_mounts.append(runs_dir)
    filler = None
    if outage == "read-only":
        subprocess.run(["mount", "-o", "remount,ro", str(runs_dir)], check=True)
    else:
        filler = _fill(runs_dir)
    server = Server(defs, work).start(tick=0.5)
    try:
        seen_reason = wait_until("the cluster paused for the work dir",
                                 lambda: next((r for r in _paused_reasons(server) if r.startswith("work dir:")), None), 60, 0.2,
                                 detail=lambda: server.log.read_text()[-3000:])
        runs = server.runs()
        assert not [r for r in runs if r["status"] in ("failed", "completed")], runs
        interrupted = [r for r in runs if r["attempt"] >= 1]
        assert interrupted, "no attempt was made while the work dir refused writes"
        # The space (or the write permission) comes back.
        if outage == "read-only":
            subprocess.run(["mount", "-o", "remount,rw", str(runs_dir)], check=True)
        else:
            assert filler is not None
            filler.unlink()
        final = server.wait_all_final(timeout=150)
        assert {r["status"] for r in final} == {"completed"}, final
        assert any(r["attempt"] > 1 for r in final), "no run was retried after an interrupted attempt"
        for r in final:
            detail = server.run(r["global_id"])
            decided = [a for a in detail["attempts"] if a.get("end_reason") == "exited"]
            assert len(decided) == 1, detail["attempts"]
            kinds = [e["kind"] for e in detail["events"]]
            assert "failed" not in kinds, kinds
        assert not _paused_reasons(server), "the pause was not lifted after a start succeeded"
        assert "work dir:" in seen_reason
    finally:
        server.stop()
