"""The simulator against the real controller: a local run of 20 runs of a few seconds each, then
`juqueue simulate --from-work-dir` of its work dir. The simulation replays the recorded run
times and node start latencies under the cluster's own policy (aggressive): it must hold the same
maximum number of nodes and bill node-seconds within 10% of the real nodes (started_at to
ended_at in the store's nodes table)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest

from helpers import Server, write_defs

CLUSTER = """
local:
  type: local
  num_slots: 4
  max_jobs: 3
  idle_timeout: 5
  grace_period: 3
  heartbeat_interval: 1
"""

# Seconds, a mild tail. Long enough that what the simulator leaves out (a local worker's shutdown,
# an exit confirmed by the next heartbeat: a few seconds per node) stays well inside 10%.
DURATIONS = [9, 21, 12, 33, 10, 15, 24, 9, 18, 13, 37, 10, 16, 12, 27, 9, 19, 13, 30, 10]

RUNS = "experiment: sim\ncluster: local\nruns:\n" + "".join(
    f"  - {{id: r{i:02d}, cmd: [sleep, '{d}']}}\n" for i, d in enumerate(DURATIONS))


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    best = now = 0
    for _, step in edges:
        now += step
        best = max(best, now)
    return best


@pytest.mark.slow(60)
def test_simulation_of_a_real_run_matches_it(workspace):
    defs = write_defs(workspace / "defs", CLUSTER, {"sim.yaml": RUNS})
    work = workspace / "work"
    server = Server(defs, work).start(tick=0.5)
    try:
        runs = server.wait_all_final(timeout=180)
        assert {r["status"] for r in runs} == {"completed"} and len(runs) == 20
        server.wait_for(lambda _: not [n for n in server.api("GET", "/api/nodes").json() if n["live"]], 90,
                        "every node released")
    finally:
        server.stop()
    db = sqlite3.connect(f"file:{work / '.juqueue' / 'juqueue.db'}?mode=ro", uri=True)
    try:
        nodes = db.execute("SELECT started_at, ended_at FROM nodes WHERE started_at IS NOT NULL").fetchall()
    finally:
        db.close()
    assert nodes and all(end is not None for _, end in nodes), nodes
    real_node_seconds = sum(end - start for start, end in nodes)
    real_max_nodes = _max_overlap(nodes)

    proc = subprocess.run([sys.executable, "-m", "juqueue", "simulate", "--from-work-dir", str(work), "--json",
                           "--policy", "aggressive"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    (sim,) = data["policies"]
    assert data["runs"] == 20 and data["num_slots"] == 4 and data["max_jobs"] == 3
    print(f"real: {real_node_seconds:.1f} node-s, {real_max_nodes} nodes; simulated: {sim['node_hours'] * 3600:.1f} node-s, {sim['max_nodes']} nodes")
    assert sim["max_nodes"] == real_max_nodes, (sim, nodes)
    sim_node_seconds = sim["node_hours"] * 3600
    assert abs(sim_node_seconds - real_node_seconds) <= 0.10 * real_node_seconds, (sim_node_seconds, real_node_seconds, nodes)
