"""Slot-exact placement and runs that need k slots, end to end with a real `juqueue serve` on a
`local` cluster with `cuda_devices_per_slot: 1` and the node given CUDA_VISIBLE_DEVICES=0,1,2,3:
a 2-slot run sees two devices (JUQUEUE_SLOTS both indices), two 1-slot runs one each, all
distinct; `status --json` shows the slot map while they run; the store recorded each attempt's
slots; a run needing more slots than its cluster's nodes have is a definition error naming it."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import Server, write_defs
from juqueue.paths import WorkDir

GPU4 = """
gpu:
  type: local
  num_slots: 4
  max_jobs: 1
  cuda_devices_per_slot: 1
  idle_timeout: 60
  grace_period: 5
  heartbeat_interval: 1
  heartbeat_timeout: 20
"""


def runs_yaml(release: Path) -> str:
    return f"""
experiment: slots
cluster: gpu
executor: {{cuda: true}}
cmd: ["sh", "-c", 'echo "$CUDA_VISIBLE_DEVICES $JUQUEUE_SLOT $JUQUEUE_SLOTS"; while [ ! -e {release} ]; do sleep 0.2; done']
runs:
  - id: pair
    slots: 2
  - id: one
  - id: two
"""


TOO_BIG = """
experiment: toobig
cluster: gpu
cmd: ["true"]
runs:
  - id: huge
    slots: 5
"""


def test_k_slot_run_gets_its_devices_and_status_shows_the_slot_map(workspace):
    release = workspace / "release"
    defs = write_defs(workspace / "defs", GPU4, {"slots.yaml": runs_yaml(release), "toobig.yaml": TOO_BIG})
    work = workspace / "work"
    server = Server(defs, work, env={"CUDA_VISIBLE_DEVICES": "0,1,2,3"}).start(tick=0.5)
    try:
        server.wait_for(lambda runs: len(runs) == 3 and all(r["status"] == "running" for r in runs), 90, "all running")
        status = json.loads(server.cli("status", "--json").stdout)
        (cluster,) = [c for c in status["clusters"] if c["name"] == "gpu"]
        (node,) = cluster["nodes"]
        assert node["slots_total"] == 4 and node["slots_used"] == 4
        slots = node["slots"]
        assert sorted(slots) == sorted(["slots@pair", "slots@pair", "slots@one", "slots@two"]), slots
        pair_at = [i for i, gid in enumerate(slots) if gid == "slots@pair"]
        api_nodes = server.api("GET", "/api/nodes").json()
        assert [n["slots"] for n in api_nodes if n.get("live")] == [slots]
        assert any("huge" in e and "num_slots: 4" in e for e in status["definition_errors"]), status["definition_errors"]

        release.write_text("")
        runs = {r["id"]: r for r in server.wait_all_final(timeout=60)}
        assert {r["status"] for r in runs.values()} == {"completed"}, runs
        seen = {}
        for rid in runs:
            devices, first, every = WorkDir(work).attempt_log("slots", rid, 1, "out").read_text().split()
            seen[rid] = (devices.split(","), int(first), [int(i) for i in every.split(",")])
        assert len(seen["pair"][0]) == 2 and len(seen["one"][0]) == 1 and len(seen["two"][0]) == 1, seen
        all_devices = seen["pair"][0] + seen["one"][0] + seen["two"][0]
        assert sorted(all_devices) == ["0", "1", "2", "3"], seen  # all distinct
        assert seen["pair"][2] == pair_at and seen["pair"][1] == pair_at[0]
        assert seen["pair"][0] == [str(i) for i in pair_at]  # slot i -> device i
        for rid in ("one", "two"):
            devices, first, every = seen[rid]
            assert every == [first] and devices == [str(first)] and slots[first] == f"slots@{rid}"
        attempt = server.run("slots@pair")["attempts"][0]
        assert attempt["slot"] == pair_at[0] and attempt["slots"] == pair_at  # the store recorded them (a JSON list)
    finally:
        release.write_text("")
        server.stop()
