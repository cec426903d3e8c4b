"""Consolidation on a real `local` cluster: four nodes each left with one long run after their
short neighbours end are brought down to one node; the moved runs resume from their own
checkpoints on attempt 2, none moves twice, all complete. Real serve, broker and workers."""

from __future__ import annotations

import time

import pytest

from helpers import Server, write_defs
from juqueue.paths import WorkDir

CLUSTER = """
local:
  type: local
  num_slots: 4
  max_jobs: 4
  idle_timeout: 60
  grace_period: 5
  heartbeat_interval: 1
  heartbeat_timeout: 20
  consolidation: aggressive
  consolidate_after: 10
"""

# A checkpointing program: progress in its run dir, saved on SIGTERM (then exit 0), resumed on start.
CHECKPOINT = """\
#!/bin/bash
f="$JUQUEUE_RUN_DIR/progress"
n=$(cat "$f" 2>/dev/null || echo 0)
echo "$JUQUEUE_ATTEMPT $n" >> "$JUQUEUE_RUN_DIR/starts"
trap 'echo "$n" > "$f"; exit 0' TERM
while [ "$n" -lt 70 ]; do sleep 0.5 & wait $!; n=$((n+1)); echo "$n" > "$f"; done
"""


def _experiment(script: str) -> str:
    lines = ["experiment: seed", "cluster: local", "runs:"]
    for node in range(4):  # queue order (by id): each node that comes up takes one long run and three short ones
        lines.append(f"  - {{id: g{node}_0_long, cmd: [bash, {script!r}]}}")
        lines += [f"  - {{id: g{node}_{k}_short, cmd: [sleep, '4']}}" for k in "123"]
    return "\n".join(lines) + "\n"


def _live_nodes(status: dict) -> list[dict]:
    return [n for c in status["clusters"] for n in c["nodes"] if n["state"] in ("pending", "starting", "up", "draining", "stopping")]


@pytest.mark.slow(50)
def test_four_nodes_each_with_one_long_run_consolidate_to_one(workspace):
    script = workspace / "checkpoint.sh"
    script.write_text(CHECKPOINT)
    defs = write_defs(workspace / "defs", CLUSTER, {"seed.yaml": _experiment(str(script))})
    server = Server(defs, workspace / "work").start(tick=0.5)
    try:
        seen_consolidating: list[dict] = []
        max_nodes = 0
        one_node_at = None
        deadline = time.time() + 240
        shorts_done_at = None
        while time.time() < deadline:
            status = server.api("GET", "/api/status").json()
            live = _live_nodes(status)
            max_nodes = max(max_nodes, len(live))
            (cluster,) = status["clusters"]
            if cluster.get("consolidating"):
                seen_consolidating.append(cluster["consolidating"])
            runs = server.runs()
            shorts = [r for r in runs if r["id"].endswith("short")]
            if shorts_done_at is None and shorts and all(r["status"] == "completed" for r in shorts):
                shorts_done_at = max(r["ended_at"] for r in shorts)
            if shorts_done_at is not None and one_node_at is None and len(live) == 1:
                one_node_at = time.time()
            if all(r["status"] in ("completed", "failed", "cancelled") for r in runs):
                break
            time.sleep(0.3)
        runs = {r["id"]: r for r in server.runs()}
        assert {r["status"] for r in runs.values()} == {"completed"}, runs
        assert max_nodes == 4, f"the example needs four nodes at first, saw {max_nodes}"
        assert shorts_done_at is not None and one_node_at is not None, "never down to one node"
        assert one_node_at - shorts_done_at <= 90, f"one node {one_node_at - shorts_done_at:.0f} s after the short runs ended"
        assert seen_consolidating, "status never showed `consolidating`"
        assert all(c["node"] and c["moves"] and all(m["run"] and m["to"] for m in c["moves"]) for c in seen_consolidating)
        moved = []
        for i in range(4):
            detail = server.run(f"seed@g{i}_0_long")
            assert detail["retries_used"] == 0
            attempts = detail["attempts"]
            assert len(attempts) <= 2, f"long{i} moved twice: {attempts}"
            if len(attempts) == 2:
                moved.append(i)
                assert attempts[0]["stop_reason"] == "move" and attempts[0]["end_reason"] == "interrupted", attempts
                assert attempts[0]["node"] != attempts[1]["node"]
                kinds = [e["kind"] for e in detail["events"]]
                assert "moved" in kinds, kinds
                starts = (WorkDir(workspace / "work").run_dir("seed", f"g{i}_0_long") / "starts").read_text().split("\n")
                second = [line for line in starts if line.startswith("2 ")]
                assert second and int(second[0].split()[1]) > 0, f"long{i} did not resume from its checkpoint: {starts}"
        assert len(moved) == 3, f"expected the runs of three nodes to move, moved: {moved}"
        final_nodes = {server.run(f"seed@g{i}_0_long")["attempts"][-1]["node"] for i in range(4)}
        assert len(final_nodes) == 1, final_nodes
    finally:
        server.stop()
