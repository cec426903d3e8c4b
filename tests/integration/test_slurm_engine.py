"""The run engine against a real SLURM: nodes are SLURM jobs (sbatch/squeue/scancel).

scripts/setup-test-slurm.sh starts a single-node SLURM (partition `debug`). Without
`sbatch` these tests are skipped with a loud reason; with CI=true they fail instead.
Every test uses its own job-name prefix and cancels its leftover jobs (`slurm_jobs`).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from helpers import REPO, Server, write_defs
from slurm_helpers import (
    all_node_files,
    checkpoint_counter,
    max_overlap,
    nodes,
    require_slurm,
    run_dir_of,
    slurm_jobs,  # noqa: F401  (fixture)
    starts_of,
    status,
)
from support.slurm import SqueueSampler, live_jobs, slurm_cluster, squeue
from support.waiting import wait_until
from juqueue.paths import WorkDir

pytestmark = [pytest.mark.slurm, pytest.mark.integration]


@pytest.fixture(autouse=True)
def need_slurm() -> None:
    require_slurm()


def _detail(server: Server, work: Path):
    def text() -> str:
        try:
            node_view = nodes(server)
        except Exception as exc:  # noqa: BLE001
            node_view = f"(nodes unavailable: {exc})"
        return f"nodes: {node_view}\n{all_node_files(work)}\nserve log:\n{server.log.read_text()[-4000:]}"
    return text


def _slurm_nodes(server: Server) -> list[dict]:
    return [n for n in nodes(server) if n.get("type") == "slurm" or n.get("job_id")]


# 1 ----------------------------------------------------------------------------------------

def test_example_definitions_run_in_slurm_jobs(workspace, slurm_jobs):
    defs = workspace / "defs"
    shutil.copytree(REPO / "example_defs", defs, dirs_exist_ok=True)
    (defs / "clusters.yaml").write_text(slurm_cluster("local", job_name=slurm_jobs, num_slots=4, max_jobs=2))
    work = workspace / "work"
    server = Server(defs, work)
    with SqueueSampler(slurm_jobs) as sampler:
        server.start()
        try:
            runs = server.wait_all_final(timeout=240)
            # idle nodes end on their own (idle_timeout 5 s): nothing bills for nothing
            all_nodes = wait_until("idle nodes to end", lambda: (lambda ns: ns if ns and not any(n["live"] for n in ns) else None)(_slurm_nodes(server)),
                                   90, detail=_detail(server, work))
            wait_until("the idle nodes' jobs to leave squeue", lambda: not live_jobs(slurm_jobs), 60,
                       detail=lambda: str(squeue(slurm_jobs)))
        finally:
            server.stop()
    assert len(runs) == 15, runs
    bad = [r for r in runs if r["status"] != "completed" or r["exit_code"] != 0]
    assert not bad, f"runs not completed: {bad}\n{all_node_files(work)}"
    for r in runs:
        assert r["cluster"] == "local" and r["node"], r
        assert r["queued_at"] <= r["started_at"] <= r["ended_at"], r
        assert WorkDir(work).attempt_log(r["experiment"], r["id"], 1, "out").exists(), r
    # the runs ran inside SLURM jobs: every node has a job id that the sampler saw in squeue
    assert all_nodes, "no SLURM nodes recorded"
    node_jobs = {n["name"]: n["job_id"] for n in all_nodes}
    assert all(node_jobs.values()), all_nodes
    assert {r["node"] for r in runs} <= set(node_jobs), (runs, all_nodes)
    assert set(node_jobs.values()) & sampler.seen, (node_jobs, sampler.seen)
    out = WorkDir(work).attempt_log("helloworld", "read_file", 1, "out").read_text()
    assert out.strip() == "done"
    # SLURM's environment reached the run: it ran under a job of ours
    # node count never exceeds max_jobs: sampled in squeue ...
    assert sampler.samples >= 5, sampler.samples
    assert 1 <= sampler.max_live <= 2, f"squeue showed {sampler.max_live} live jobs at once (max_jobs 2)"
    # ... and in the nodes' recorded lifetimes
    now = time.time()
    intervals = [(n["started_at"], n.get("ended_at") or now) for n in all_nodes if n.get("started_at")]
    assert intervals, all_nodes
    assert max_overlap(intervals) <= 2, all_nodes
    assert all(n.get("ended_at") for n in all_nodes), all_nodes


def _counter_experiment(name: str, run_id: str, steps: int, step_s: float = 1.0) -> str:
    import json as _json
    cmd = _json.dumps(["sh", "-c", checkpoint_counter(steps, step_s)])
    return f"experiment: {name}\ncluster: c\nruns:\n  - {{id: {run_id}, cmd: {cmd}}}\n"


def _running_on_node(server: Server, gid: str, attempt: int):
    def check():
        r = server.run(gid)
        if r["status"] == "running" and r["attempt"] == attempt and r["node"]:
            return r
        return None
    return check


def _node(server: Server, name: str) -> dict | None:
    return next((n for n in nodes(server) if n["name"] == name), None)


def _count(work: Path, gid: str) -> int:
    path = run_dir_of(work, gid) / "count"
    try:
        return int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def _attempt_starts(lines: list[str]) -> dict[int, int]:
    """attempt number -> the step it started from, from the counter's `starts` file."""
    out = {}
    for line in lines:
        fields = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
        if "start" in fields:
            out[int(fields["attempt"])] = int(fields["start"])
    return out


# 3 ----------------------------------------------------------------------------------------

@pytest.mark.slow(45)
def test_scancel_mid_run_requeues_and_resumes_on_another_node(workspace, slurm_jobs):
    steps = 25
    gid = "cancelled@count"
    defs = write_defs(workspace / "defs", slurm_cluster("c", job_name=slurm_jobs, num_slots=1, max_jobs=2, grace_period=10),
                      {"count.yaml": _counter_experiment("cancelled", "count", steps)})
    work = workspace / "work"
    server = Server(defs, work).start()
    detail = _detail(server, work)
    try:
        first = wait_until("attempt 1 running", _running_on_node(server, gid, 1), 120, detail=detail)
        wait_until("a few steps counted", lambda: _count(work, gid) >= 5, 60, detail=detail)
        node1 = _node(server, first["node"])
        assert node1 and node1["job_id"], node1
        job1 = node1["job_id"]
        assert any(j[0] == job1 for j in live_jobs(slurm_jobs)), squeue(slurm_jobs)
        import subprocess
        subprocess.run(["scancel", job1], check=True, timeout=30)
        cancelled_at_count = _count(work, gid)

        second = wait_until("attempt 2 running", _running_on_node(server, gid, 2), 120, detail=detail)
        assert second["node"] != first["node"], (first, second)
        node2 = _node(server, second["node"])
        assert node2 and node2["job_id"] and node2["job_id"] != job1, (node1, node2)
        final = wait_until("the run to end", lambda: (lambda r: r if r["status"] in ("completed", "failed", "cancelled") else None)(server.run(gid)),
                           120, detail=detail)
        ended_node1 = _node(server, first["node"])
        runs = server.runs()
    finally:
        server.stop()
    assert final["status"] == "completed" and final["exit_code"] == 0 and final["attempt"] == 2, final
    attempts = {a["number"]: a for a in final["attempts"]}
    assert set(attempts) == {1, 2}, final["attempts"]
    assert attempts[1]["end_reason"] == "interrupted" and attempts[1]["node"] == first["node"], attempts[1]
    assert attempts[2]["end_reason"] == "exited" and attempts[2]["exit_code"] == 0, attempts[2]
    # at most one live attempt: the second started only after the first ended
    assert attempts[1]["ended_at"] <= attempts[2]["started_at"], attempts
    # resumed from its own checkpoint, and counted every step exactly to the end
    starts = _attempt_starts(starts_of(work, gid))
    assert starts.get(1) == 0 and starts.get(2, 0) > 0, starts_of(work, gid)
    assert starts[2] >= cancelled_at_count - 1, (starts, cancelled_at_count)
    assert _count(work, gid) == steps
    assert ended_node1 and not ended_node1["live"] and ended_node1["job_id"] == job1, ended_node1
    assert len(runs) == 1 and runs[0]["status"] == "completed", runs


# 5 ----------------------------------------------------------------------------------------

@pytest.mark.slow(40)
def test_sbatch_rejection_shows_slurms_message_and_does_not_loop(workspace, slurm_jobs):
    defs = write_defs(workspace / "defs", slurm_cluster("c", job_name=slurm_jobs, partition="nosuchpartition", max_jobs=2),
                      {"x.yaml": "experiment: x\ncluster: c\nruns:\n  - {id: a, cmd: [\"true\"]}\n  - {id: b, cmd: [\"true\"]}\n"})
    work = workspace / "work"
    server = Server(defs, work).start()
    detail = _detail(server, work)
    try:
        def failed_nodes():
            return [n for n in nodes(server) if n.get("reason") and "invalid partition" in n["reason"].lower()]
        seen = wait_until("a node record with SLURM's message", failed_nodes, 60, detail=detail)
        assert "nosuchpartition" in seen[0]["reason"] or "invalid partition" in seen[0]["reason"].lower(), seen
        paused = wait_until("the cluster paused", lambda: next((c["paused_reason"] for c in status(server)["clusters"]
                                                                 if c["name"] == "c" and c.get("paused_reason")), None),
                            60, detail=detail)
        count_paused = len(nodes(server))
        time.sleep(20)
        all_nodes = nodes(server)
        st = status(server)
        cli = server.cli("status")
        runs = server.runs()
    finally:
        server.stop()
    assert "invalid partition" in paused.lower(), paused
    # attempts stay few: the controller pauses after repeated failures instead of looping
    assert len(all_nodes) <= 5, f"{len(all_nodes)} sbatch attempts in ~20 s: {all_nodes}"
    assert len(all_nodes) - count_paused <= 1, (count_paused, all_nodes)
    assert not [n for n in all_nodes if n.get("job_id")], all_nodes
    assert not [n for n in all_nodes if n["live"]], all_nodes
    assert "invalid partition" in (cli.stdout + cli.stderr).lower(), cli.stdout
    assert next(c for c in st["clusters"] if c["name"] == "c")["paused_reason"], st
    # the runs wait (queued), none ran, no job exists
    assert sorted(r["status"] for r in runs) == ["queued", "queued"], runs
    assert not squeue(slurm_jobs)


# 6 ----------------------------------------------------------------------------------------

@pytest.mark.slow(35)
def test_controller_restart_reattaches_running_jobs(workspace, slurm_jobs):
    ids = [f"s{i}" for i in range(4)]
    log_cmd = 'echo "$JUQUEUE_ATTEMPT $(date +%s)" >> "$JUQUEUE_RUN_DIR/executions"; sleep 15'
    import json as _json
    runs_yaml = "".join(f"  - {{id: {i}, cmd: {_json.dumps(['sh', '-c', log_cmd])}}}\n" for i in ids)
    defs = write_defs(workspace / "defs", slurm_cluster("c", job_name=slurm_jobs, num_slots=2, max_jobs=2, idle_timeout=5),
                      {"sleepers.yaml": "experiment: sleepers\ncluster: c\nruns:\n" + runs_yaml})
    work = workspace / "work"
    server = Server(defs, work).start()
    detail = _detail(server, work)
    try:
        def all_running():
            runs = server.runs()
            return runs if len(runs) == 4 and all(r["status"] == "running" for r in runs) else None
        before_runs = wait_until("4 runs running on 2 nodes", all_running, 120, detail=detail)
        before_nodes = {n["name"]: n["job_id"] for n in nodes(server) if n["live"]}
        assert len(before_nodes) == 2 and all(before_nodes.values()), before_nodes
        assert {r["node"] for r in before_runs} == set(before_nodes), (before_runs, before_nodes)
        jobs_before = {j[0] for j in live_jobs(slurm_jobs)}
        assert jobs_before == set(before_nodes.values()), (jobs_before, before_nodes)

        server.kill()
        time.sleep(2)
        assert {j[0] for j in live_jobs(slurm_jobs)} == jobs_before, "the jobs must outlive the controller"
        server.start()
        detail = _detail(server, work)

        def reattached():
            live = {n["name"]: n["job_id"] for n in nodes(server) if n["live"]}
            return live if live == before_nodes else None
        wait_until("the same nodes live again", reattached, 60, detail=detail)
        all_jobs_seen = set()

        def finished():
            all_jobs_seen.update(j[0] for j in squeue(slurm_jobs))
            runs = server.runs()
            return runs if runs and all(r["status"] in ("completed", "failed", "cancelled") for r in runs) else None
        after_runs = wait_until("every run final", finished, 120, detail=detail)
        after_nodes = nodes(server)
    finally:
        server.stop()
    assert all(r["status"] == "completed" and r["exit_code"] == 0 for r in after_runs), after_runs
    assert all(r["attempt"] == 1 for r in after_runs), after_runs
    # every run ran once, on the node it had before the restart
    for r in after_runs:
        lines = (run_dir_of(work, r["global_id"]) / "executions").read_text().splitlines()
        assert len(lines) == 1 and lines[0].startswith("1 "), (r, lines)
        assert r["node"] == next(b["node"] for b in before_runs if b["global_id"] == r["global_id"]), r
    # no new sbatch: no node and no job beyond the two from before
    assert {n["job_id"] for n in after_nodes} == set(before_nodes.values()), after_nodes
    assert all_jobs_seen <= jobs_before, (all_jobs_seen, jobs_before)


# 4 ----------------------------------------------------------------------------------------

@pytest.mark.slow(220)
@pytest.mark.timeout(600)
def test_wall_time_warning_checkpoints_and_resumes_on_a_new_node(workspace, slurm_jobs):
    """A 4-minute job warned 70 s before its end, replacement_lead 90: the replacement job is
    submitted about 80 s after the first starts, is running well before the first node's
    warning, and the drained run's next attempt starts on it within seconds. SLURM may send the
    warning up to 60 s early: started 80 s later, the replacement is never warned at the same
    pass of SLURM's time-limit check as the first node (with a 3-minute job both would be)."""
    steps = 200  # more than a 4-minute job gives before its warning
    gid = "walltime@count"
    defs = write_defs(workspace / "defs", slurm_cluster("c", job_name=slurm_jobs, num_slots=1, max_jobs=2, time="00:04:00",
                                                        grace_period=10, signal_lead=70, idle_timeout=5,
                                                        replacement_lead=90),
                      {"count.yaml": _counter_experiment("walltime", "count", steps)})
    work = workspace / "work"
    server = Server(defs, work).start()
    detail = _detail(server, work)
    try:
        final = wait_until("the run to end", lambda: (lambda r: r if r["status"] in ("completed", "failed", "cancelled") else None)(server.run(gid)),
                           450, interval=2, detail=detail)
        all_nodes = nodes(server)
    finally:
        server.stop()
    assert final["status"] == "completed" and final["exit_code"] == 0, final
    attempts = sorted(final["attempts"], key=lambda a: a["number"])
    assert len(attempts) >= 2, attempts
    first = attempts[0]
    assert first["end_reason"] == "interrupted", first
    # interrupted whatever its exit code: the counter exits 0 on SIGTERM
    lines = starts_of(work, gid)
    assert any(line.startswith("attempt=1 term") for line in lines), lines
    for a in attempts[:-1]:
        assert a["end_reason"] == "interrupted", attempts
    assert attempts[-1]["end_reason"] == "exited" and attempts[-1]["exit_code"] == 0, attempts
    # every attempt on a NEW node (a fresh SLURM job), never two at once
    assert len({a["node"] for a in attempts}) == len(attempts), attempts
    by_name = {n["name"]: n for n in all_nodes}
    job_ids = [by_name[a["node"]]["job_id"] for a in attempts]
    assert all(job_ids) and len(set(job_ids)) == len(job_ids), (attempts, all_nodes)
    for a, b in zip(attempts, attempts[1:]):
        assert a["ended_at"] <= b["started_at"], attempts
    # the first node was warned (USR1 from SLURM) and drained, and the attempt was stopped within the wall time
    job_log = (WorkDir(work).node_dir(first["node"]) / "job.log").read_text(errors="replace")
    assert "USR1" in job_log, job_log[-3000:]
    node1 = by_name[first["node"]]
    assert first["ended_at"] - node1["started_at"] < 240, (first, node1)
    # resumed from its own checkpoint each time, and counted to the end
    starts = _attempt_starts(lines)
    assert starts[1] == 0 and all(starts[n] > 0 for n in starts if n > 1), lines
    assert [starts[n] for n in sorted(starts)] == sorted(starts.values()), lines
    assert _count(work, gid) == steps
    gaps = [round(b["started_at"] - a["ended_at"], 1) for a, b in zip(attempts, attempts[1:])]
    print(f"wall-time requeue gaps (s): {gaps}; attempts: {[(a['number'], a['node'], a['end_reason']) for a in attempts]}")
    # Wall time without a gap: the second attempt ran on the first node's replacement, whose job
    # was running (SLURM's own start time) well before the first node's warning drained attempt 1.
    second = by_name[attempts[1]["node"]]
    assert second["replaces"] == first["node"], (second, node1)
    assert second["billed_from"] is not None and node1["billed_from"] is not None, (second, node1)
    assert second["billed_from"] < first["ended_at"] - 20, (second, first)
    assert gaps[0] < 10, gaps
