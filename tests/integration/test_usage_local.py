"""Node-hour accounting on a real local cluster: busy slot-seconds exactly the attempts' spans,
efficiency as computed by hand from the nodes' billed intervals, and both survive a restart."""

from __future__ import annotations

import pytest

from helpers import Server, write_defs

CLUSTER = """
local:
  type: local
  num_slots: 2
  max_jobs: 2
  idle_timeout: 2
  grace_period: 3
  heartbeat_interval: 1
  consolidation: idle
"""

RUNS = """
experiment: acct
cluster: local
runs:
""" + "".join(f"  - {{id: r{i}, cmd: [sleep, '{2 + i % 2}']}}\n" for i in range(4))


@pytest.mark.slow(45)
def test_usage_by_hand_and_across_a_restart(workspace):
    defs = write_defs(workspace / "defs", CLUSTER, {"acct.yaml": RUNS})
    work = workspace / "work"
    server = Server(defs, work).start(tick=0.5)
    try:
        server.wait_all_final(timeout=90)
        server.wait_for(lambda runs: not [n for n in server.api("GET", "/api/nodes").json() if n["live"]], 60, "nodes released")
        nodes = server.api("GET", "/api/nodes").json()
        attempts = [a for r in server.runs() for a in server.run(r["global_id"])["attempts"]]
        busy = sum(a["ended_at"] - a["started_at"] for a in attempts)
        assert len(nodes) == 2 and all(n["billed_from"] and n["billed_until"] and not n["billed_estimated"] for n in nodes)
        billed = sum(n["billed_until"] - n["billed_from"] for n in nodes)
        hand_efficiency = busy / (billed * 2)
        usage = server.api("GET", "/api/usage").json()
        c = usage["clusters"]["local"]
        assert c["busy_slot_hours"] == pytest.approx(busy / 3600, abs=1e-6)  # exactly the attempts' spans
        assert c["node_hours"] == pytest.approx(billed / 3600, abs=1e-6)
        assert abs(c["efficiency"] - hand_efficiency) <= 0.02 * hand_efficiency
        assert usage["experiments"]["acct"]["node_hours"] == pytest.approx(c["node_hours"], abs=1e-6)
        # the nodes' processes lived about as long as billed: started before the first run, ended after the last
        assert min(n["billed_from"] for n in nodes) <= min(a["started_at"] for a in attempts)
        assert max(n["billed_until"] for n in nodes) >= max(a["ended_at"] for a in attempts)
        series = usage["series"]["local"]
        assert max(p["nodes"] for p in series) == 2 and max(p["slots_busy"] for p in series) >= 2 and series[-1]["nodes"] == 0
        status = server.api("GET", "/api/status").json()
        assert status["clusters"][0]["usage"]["node_hours"] == c["node_hours"]
        text = server.cli("status").stdout
        assert "node-hours billed" in text and "efficiency" in text
    finally:
        server.stop()
    again = Server(defs, work).start(tick=0.5)
    try:
        after = again.api("GET", "/api/usage").json()
        assert after["clusters"] == usage["clusters"] and after["experiments"] == usage["experiments"]
        assert after["series"]["local"][: len(series)] == series
    finally:
        again.stop()
