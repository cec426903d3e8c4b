"""A run that needs CUDA devices on a cluster whose job has none: rejected without spending a
retry, the node marked, at most one more node started for it, the run waits with the reason;
runs that need no device are not held up. Real serve, real workers."""

from __future__ import annotations

import time

from helpers import Server, write_defs

CLUSTER = """
gpu:
  type: local
  num_slots: 2
  max_jobs: 3
  idle_timeout: 60
  grace_period: 5
  heartbeat_interval: 1
  heartbeat_timeout: 20
  cuda_devices_per_slot: 1
"""

RUNS = """
experiment: mixed
cluster: gpu
max_retries: 2
runs:
  - id: needs_gpu
    cmd: ["true"]
    executor: {cuda: true}
  - id: plain
    cmd: [sleep, "0.5"]
"""


def test_cuda_run_on_a_node_without_devices_waits_with_the_reason(workspace):
    defs = write_defs(workspace / "defs", CLUSTER, {"mixed.yaml": RUNS})
    server = Server(defs, workspace / "work", env={"CUDA_VISIBLE_DEVICES": ""}).start(tick=0.5)
    try:
        marked: list[dict] = []  # nodes that status showed without devices (they are released soon after)

        def waiting_with_reason(runs: list[dict]) -> dict | None:
            status = server.api("GET", "/api/status").json()
            marked.extend(n for c in status["clusters"] for n in c["nodes"] if n.get("no_devices"))
            gpu = next((r for r in runs if r["id"] == "needs_gpu"), None)
            plain_done = any(r["id"] == "plain" and r["status"] == "completed" for r in runs)
            if plain_done and gpu and gpu["status"] == "queued" and gpu["attempt"] >= 2 and marked \
                    and "CUDA devices" in (gpu.get("reason") or ""):
                return gpu
            return None

        gpu = server.wait_for(waiting_with_reason, 90, "the GPU run waiting with the reason after the probe node")
        time.sleep(5)  # no further node is started for it, and nothing loops
        detail = server.run(gpu["global_id"])
        assert detail["status"] == "queued", detail
        assert "CUDA devices" in detail["reason"], detail["reason"]
        assert detail["retries_used"] == 0, detail
        assert all(a["end_reason"] == "interrupted" for a in detail["attempts"]), detail["attempts"]
        assert len(detail["attempts"]) <= 2, detail["attempts"]
        nodes = server.api("GET", "/api/nodes").json()
        assert len(nodes) <= 2, nodes  # the first node and at most one started to look for devices
        assert any("no CUDA devices" in (n["reason"] or "") for n in marked), marked
    finally:
        server.stop()
