"""Definition edits win: a live run whose command changed is stopped and rerun with the new
definition; a live run whose duration changed is not interrupted; a failed run fixed in its file,
reloaded and resumed runs the new command; more than 10 stops need --yes."""

from __future__ import annotations

from helpers import Server, write_defs

from juqueue.paths import WorkDir

CLUSTER = """
local:
  type: local
  num_slots: 16
  max_jobs: 1
  idle_timeout: 30
  grace_period: 2
  heartbeat_interval: 1
  consolidation: idle
"""


def _defs(cmd_a: str, dur_b: int, cmd_c: str, many: str) -> str:
    return f"""
experiment: ed
cluster: local
runs:
  - {{id: a, cmd: [sh, -c, "{cmd_a}"]}}
  - {{id: b, cmd: [sh, -c, "sleep 6; echo b"], duration: {dur_b}}}
  - {{id: c, cmd: [sh, -c, "{cmd_c}"]}}
""" + "".join(f"  - {{id: m{i}, cmd: [sh, -c, '{many}']}}\n" for i in range(11))


def test_edits_of_live_and_failed_runs(workspace):
    defs = write_defs(workspace / "defs", CLUSTER, {"ed.yaml": _defs("echo old-a; sleep 30", 6, "echo old-c; exit 3", "sleep 60")})
    server = Server(defs, workspace / "work").start(tick=0.5)
    try:
        server.wait_for(lambda rs: {r["id"]: r["status"] for r in rs}.get("c") == "failed"
                        and all(r["status"] == "running" for r in rs if r["id"] != "c"), 60, "a, b, m* running; c failed")
        # 12 live runs would be stopped (a and the eleven m*): refused without --yes, nothing applied
        (defs / "ed.yaml").write_text(_defs("echo new-a", 9, "echo new-c", "true"))
        out = server.cli("reload", check=False)
        assert out.returncode == 1 and "--yes" in (out.stdout + out.stderr), out
        assert all(r["attempt"] == 1 for r in server.runs())
        out = server.cli("reload", "--yes", "--json")
        assert '"stopped"' in out.stdout
        server.cli("resume", "ed@c")
        runs = server.wait_all_final(timeout=90)
        by_id = {r["id"]: r for r in runs}
        work = WorkDir(workspace / "work")
        log = lambda rid, n: work.attempt_log("ed", rid, n, "out").read_text().strip()  # noqa: E731
        assert by_id["a"]["status"] == "completed" and by_id["a"]["attempt"] == 2 and log("a", 2) == "new-a"
        first = server.run("ed@a")["attempts"][0]
        assert first["stop_reason"] == "redefined" and first["end_reason"] == "interrupted"
        assert by_id["b"]["status"] == "completed" and by_id["b"]["attempt"] == 1  # only its duration changed
        assert by_id["c"]["status"] == "completed" and log("c", 2) == "new-c"
        assert all(by_id[f"m{i}"]["attempt"] == 2 for i in range(11))
    finally:
        server.stop()
