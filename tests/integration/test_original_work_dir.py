"""A work dir of the original JuQueue: each run's juqueue-run.json status is kept (finished runs
are not rerun, inactive ones are held, ready ones run), and a resumed run finds the checkpoint the
original left in W/<experiment>/<run>/. Real serve, real workers."""

from __future__ import annotations

import json
import time

from helpers import Server, write_defs

CLUSTER = """
local:
  type: local
  num_slots: 4
  max_jobs: 1
  idle_timeout: 30
  heartbeat_interval: 1
"""

# Each run prints the checkpoint it finds in its own directory (the original's layout).
RUNS = """
experiment: old
cluster: local
cmd: [sh, -c, 'cat checkpoint 2>/dev/null || echo none']
runs:
  - {id: done}
  - {id: broken}
  - {id: paused}
  - {id: waiting}
  - {id: garbled}
"""


def test_original_statuses_kept_and_checkpoints_found(workspace):
    defs = write_defs(workspace / "defs", CLUSTER, {"old.yaml": RUNS})
    work = workspace / "work"
    for run, status in (("done", "finished"), ("broken", "failed"), ("paused", "inactive"), ("waiting", "ready")):
        d = work / "old" / run
        d.mkdir(parents=True)
        (d / "juqueue-run.json").write_text(json.dumps({"status": status, "created_at": "2022-05-01 10:00:00"}))
        (d / "checkpoint").write_text(f"step-of-{run}\n")
    (work / "old" / "garbled").mkdir()
    (work / "old" / "garbled" / "juqueue-run.json").write_text("{not json")
    server = Server(defs, work).start(tick=0.5)
    try:
        server.wait_for(lambda rs: {r["id"]: r["status"] for r in rs}.get("waiting") == "completed"
                        and {r["id"]: r["status"] for r in rs}.get("garbled") == "completed", 60, "ready runs ran")
        time.sleep(2)
        by_id = {r["id"]: r for r in server.runs()}
        assert by_id["done"]["status"] == "completed" and by_id["done"]["attempt"] == 0  # not rerun
        assert by_id["broken"]["status"] == "failed" and by_id["broken"]["attempt"] == 0
        assert by_id["paused"]["status"] == "held" and by_id["paused"]["attempt"] == 0
        assert (work / "old" / "waiting" / "logs" / "attempt-1.out").read_text().strip() == "step-of-waiting"
        assert "garbled" in server.log.read_text() and "juqueue-run.json" in server.log.read_text()
        server.cli("resume", "old@paused")
        server.wait_for(lambda rs: {r["id"]: r["status"] for r in rs}.get("paused") == "completed", 60, "paused resumed")
        assert (work / "old" / "paused" / "logs" / "attempt-1.out").read_text().strip() == "step-of-paused"
    finally:
        server.stop()
