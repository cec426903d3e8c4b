"""`juqueue reload` re-reads clusters.yaml: settings apply at once, a broken file changes
nothing, and a first slurm cluster behind a loopback-only broker asks for a restart."""

from __future__ import annotations

import time

import pytest

from helpers import Server, write_defs
from support.waiting import wait_until

CHECKPOINT = """\
#!/bin/bash
f="$JUQUEUE_RUN_DIR/progress"
n=$(cat "$f" 2>/dev/null || echo 0)
trap 'echo "$n" > "$f"; exit 0' TERM
while [ "$n" -lt "$1" ]; do sleep 0.5 & wait $!; n=$((n+1)); echo "$n" > "$f"; done
"""


def _cluster(max_jobs: int, mode: str, after: int = 3) -> str:
    return f"""
local:
  type: local
  num_slots: 4
  max_jobs: {max_jobs}
  idle_timeout: 60
  grace_period: 3
  heartbeat_interval: 1
  heartbeat_timeout: 20
  consolidation: {mode}
  consolidate_after: {after}
"""


def _experiment(script: str, steps: int) -> str:
    lines = ["experiment: r", "cluster: local", "runs:"]
    for node in range(3):  # by id: each node takes one long run and three short ones
        lines.append(f"  - {{id: g{node}_0_long, cmd: [bash, {script!r}, '{steps}']}}")
        lines += [f"  - {{id: g{node}_{k}_short, cmd: [sleep, '3']}}" for k in "123"]
    return "\n".join(lines) + "\n"


def _live(server: Server) -> list[dict]:
    return [n for n in server.api("GET", "/api/nodes").json() if n["live"] and n["state"] != "gone"]


def _wait_shorts_done(server: Server) -> None:
    server.wait_for(lambda runs: all(r["status"] == "completed" for r in runs if r["id"].endswith("short")), 90, "short runs done")


@pytest.mark.slow(55)
def test_lower_max_jobs_and_aggressive_at_run_time_consolidates_to_one(workspace):
    script = workspace / "ckpt.sh"
    script.write_text(CHECKPOINT)
    defs = write_defs(workspace / "defs", _cluster(3, "idle"), {"r.yaml": _experiment(str(script), 80)})
    server = Server(defs, workspace / "work").start(tick=0.5)
    try:
        server.wait_for(lambda runs: len([r for r in runs if r["status"] == "running"]) == 12, 60, "12 runs running")
        assert len(_live(server)) == 3
        _wait_shorts_done(server)
        time.sleep(5)  # idle: nothing moves
        assert len(_live(server)) == 3 and all(r["attempt"] == 1 for r in server.runs())
        (defs / "clusters.yaml").write_text(_cluster(1, "aggressive"))
        out = server.cli("reload", "--json")
        assert '"changed": [\n      "local"' in out.stdout or '"local"' in out.stdout, out.stdout
        status = server.api("GET", "/api/status").json()["clusters"][0]
        assert status["consolidation"] == "aggressive"
        wait_until("one live node", lambda: len(_live(server)) == 1, 90, 0.5, detail=lambda: str(_live(server)))
        runs = server.wait_all_final(timeout=120)
        assert {r["status"] for r in runs} == {"completed"}
        assert sum(1 for r in runs if r["attempt"] == 2) == 2, [(r["id"], r["attempt"]) for r in runs]
    finally:
        server.stop()


@pytest.mark.slow(45)
def test_idle_set_at_run_time_stops_further_moves_and_bad_files_change_nothing(workspace):
    script = workspace / "ckpt.sh"
    script.write_text(CHECKPOINT)
    defs = write_defs(workspace / "defs", _cluster(3, "aggressive", after=8), {"r.yaml": _experiment(str(script), 40)})
    server = Server(defs, workspace / "work").start(tick=0.5)
    try:
        server.wait_for(lambda runs: len([r for r in runs if r["status"] == "running"]) == 12, 60, "12 runs running")
        _wait_shorts_done(server)
        (defs / "clusters.yaml").write_text(_cluster(3, "idle", after=8))
        assert server.api("POST", "/api/reload").json()["errors"] == []
        # A broken clusters.yaml, then a first slurm cluster: both refused, nothing changes.
        (defs / "clusters.yaml").write_text("local: {type: local, num_slots: -4}\n")
        errors = server.api("POST", "/api/reload").json()["errors"]
        assert any("clusters.yaml" in e and "num_slots" in e and "not applied" in e for e in errors), errors
        (defs / "clusters.yaml").write_text(_cluster(3, "idle", after=8) + "hpc: {type: slurm, num_slots: 4, max_jobs: 1}\n")
        errors = server.api("POST", "/api/reload").json()["errors"]
        assert any("restart" in e and "hpc" in e for e in errors), errors
        status = server.api("GET", "/api/status").json()
        assert [c["name"] for c in status["clusters"]] == ["local"] and status["clusters"][0]["consolidation"] == "idle"
        runs = server.wait_all_final(timeout=120)
        assert {r["status"] for r in runs} == {"completed"}
        assert all(r["attempt"] == 1 for r in runs), [(r["id"], r["attempt"]) for r in runs]
        for r in runs:
            assert not any(a.get("stop_reason") == "move" for a in server.run(r["global_id"])["attempts"])
    finally:
        server.stop()
