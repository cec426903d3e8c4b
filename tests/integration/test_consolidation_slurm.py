"""Consolidation on the test SLURM: three jobs, each left with one long checkpointing run once
its short neighbours end, are brought down to one. The two emptied jobs leave `squeue` while
the third still works; their runs resume from their own checkpoints on attempt 2 on the third
job's node, none moves twice, all complete, and JuQueue never has more than `max_jobs` jobs in
`squeue`. Real serve, embedded broker, sbatch/squeue/scancel, workers inside the jobs.

scripts/setup-test-slurm.sh starts the SLURM. Without `sbatch` the test is skipped with a loud
reason; with CI=true it fails instead (require_slurm).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from helpers import FINAL, Server, write_defs
from slurm_helpers import (
    all_node_files,
    checkpoint_counter,
    nodes,
    require_slurm,
    run_dir_of,
    slurm_jobs,  # noqa: F401  (fixture)
    starts_of,
    status,
)
from support.slurm import SqueueSampler, live_jobs, slurm_cluster, squeue

pytestmark = [pytest.mark.slurm, pytest.mark.integration]

MAX_JOBS = 3
NUM_SLOTS = 4
LONG_STEPS = 90  # 1 s each: outlives both moves (the second comes ~30-40 s after the short runs end)
SHORT_S = 8  # long enough that all three jobs are up before any short run ends
DEADLINE_S = 200


@pytest.fixture(autouse=True)
def need_slurm() -> None:
    require_slurm()


def _experiment() -> str:
    long_cmd = json.dumps(["sh", "-c", checkpoint_counter(LONG_STEPS, 1.0)])
    lines = ["experiment: seed", "cluster: c", "runs:"]
    for job in range(MAX_JOBS):  # queue order (by id): each job that comes up takes one long run and three short ones
        lines.append(f"  - {{id: g{job}_0_long, cmd: {long_cmd}}}")
        lines += [f"  - {{id: g{job}_{k}_short, cmd: [sleep, '{SHORT_S}']}}" for k in range(1, NUM_SLOTS)]
    return "\n".join(lines) + "\n"


def _attempt_starts(lines: list[str]) -> dict[int, int]:
    """attempt number -> the step it started from, from the counter's `starts` file."""
    out = {}
    for line in lines:
        fields = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
        if "start" in fields:
            out[int(fields["attempt"])] = int(fields["start"])
    return out


def _detail(server: Server, work: Path, prefix: str) -> str:
    try:
        node_view = json.dumps(nodes(server), indent=1)
    except Exception as exc:  # noqa: BLE001
        node_view = f"(nodes unavailable: {exc})"
    return (f"squeue: {squeue(prefix)}\nnodes: {node_view}\n{all_node_files(work)}\n"
            f"serve log:\n{server.log.read_text(errors='replace')[-6000:]}")


@pytest.mark.slow(110)
@pytest.mark.timeout(300)
def test_three_jobs_each_with_one_long_run_consolidate_to_one(workspace, slurm_jobs):
    prefix = slurm_jobs
    cluster = slurm_cluster("c", job_name=prefix, num_slots=NUM_SLOTS, max_jobs=MAX_JOBS, idle_timeout=60,
                            heartbeat_timeout=20, poll_interval=2, grace_period=4,
                            consolidation="aggressive", consolidate_after=8)
    defs = write_defs(workspace / "defs", cluster, {"seed.yaml": _experiment()})
    work = workspace / "work"
    longs = [f"seed@g{j}_0_long" for j in range(MAX_JOBS)]
    began = time.time()
    server = Server(defs, work)
    with SqueueSampler(prefix, max_jobs=MAX_JOBS) as sampler:
        server.start()
        try:
            seen_consolidating: list[dict] = []
            placement: dict[str, str] = {}  # long run -> its attempt-1 node, once all three ran at once
            shorts_done_at = None
            finished_at = None
            deadline = time.time() + DEADLINE_S
            while time.time() < deadline:
                st = status(server)
                (c,) = st["clusters"]
                if c.get("consolidating"):
                    seen_consolidating.append(c["consolidating"])
                runs = server.runs()
                by_gid = {r["global_id"]: r for r in runs}
                if not placement and all(by_gid.get(g, {}).get("status") == "running" and by_gid[g]["attempt"] == 1
                                         for g in longs):
                    placement = {g: by_gid[g]["node"] for g in longs}
                shorts = [r for r in runs if r["id"].endswith("short")]
                if shorts_done_at is None and shorts and all(r["status"] in FINAL for r in shorts):
                    shorts_done_at = time.time()
                if runs and all(r["status"] in FINAL for r in runs):
                    finished_at = time.time()
                    break
                time.sleep(0.5)
            if finished_at is None:
                raise AssertionError(f"runs not final within {DEADLINE_S} s: {json.dumps(server.runs(), indent=1)[:3000]}\n"
                                     + _detail(server, work, prefix))
            runs = {r["global_id"]: r for r in server.runs()}
            details = {g: server.run(g) for g in runs}
            all_nodes = {n["name"]: n for n in nodes(server)}
            still_live = {j[0] for j in live_jobs(prefix)}
            diagnostics = _detail(server, work, prefix)
        finally:
            server.stop()
    elapsed = time.time() - began
    print(f"consolidation on SLURM: all runs final after {finished_at - began:.0f} s, test {elapsed:.0f} s; "
          f"squeue samples {sampler.samples}, max live jobs {sampler.max_live}")

    # every run completed, none failed, no retry spent
    bad = {g: (r["status"], r["exit_code"]) for g, r in runs.items() if r["status"] != "completed" or r["exit_code"] != 0}
    assert not bad, f"runs not completed: {bad}\n{diagnostics}"
    assert len(runs) == MAX_JOBS * NUM_SLOTS, runs
    assert all(d["retries_used"] == 0 for d in details.values()), {g: d["retries_used"] for g, d in details.items()}

    # the setup: three jobs at first, each with one long run
    assert placement, f"the three long runs never ran at once\n{diagnostics}"
    assert len(set(placement.values())) == MAX_JOBS, f"each job must hold one long run: {placement}\n{diagnostics}"
    assert shorts_done_at is not None

    # squeue never showed more than max_jobs live jobs of ours
    assert sampler.samples >= 20, sampler.samples
    assert sampler.max_live == MAX_JOBS, f"max live jobs {sampler.max_live} (expected {MAX_JOBS} at first): {sampler.over}"
    assert not sampler.over, f"more than {MAX_JOBS} jobs in squeue: {sampler.over}"

    # status showed `consolidating` with its moves
    assert seen_consolidating, f"status never showed `consolidating`\n{diagnostics}"
    assert all(c["node"] and c["moves"] and all(m["run"] and m["to"] for m in c["moves"]) for c in seen_consolidating), \
        seen_consolidating
    assert {c["node"] for c in seen_consolidating} <= set(placement.values()), (seen_consolidating, placement)

    # two long runs moved once each, the third stayed where it was
    moved, stayed = [], []
    for gid in longs:
        d = details[gid]
        attempts = sorted(d["attempts"], key=lambda a: a["number"])
        moves = [e for e in d["events"] if e["kind"] == "moved"]
        assert len(attempts) <= 2 and len(moves) <= 1, f"{gid} moved more than once: {attempts} {moves}"
        assert attempts[0]["node"] == placement[gid], (gid, attempts, placement)
        (moved if len(attempts) == 2 else stayed).append(gid)
    assert len(moved) == 2 and len(stayed) == 1, f"moved {moved}, stayed {stayed}\n{diagnostics}"
    (survivor_gid,) = stayed
    survivor = placement[survivor_gid]
    survivor_job = all_nodes[survivor]["job_id"]
    assert survivor_job, all_nodes[survivor]
    for gid in moved:
        first, second = sorted(details[gid]["attempts"], key=lambda a: a["number"])
        assert first["stop_reason"] == "move" and first["end_reason"] == "interrupted", first
        assert second["node"] == survivor, f"{gid} went to {second['node']}, not the third job's node {survivor}"
        assert second["end_reason"] == "exited" and second["exit_code"] == 0, second
        assert first["ended_at"] <= second["started_at"], (first, second)  # never two attempts at once
        # resumed from its own checkpoint
        lines = starts_of(work, gid)
        starts = _attempt_starts(lines)
        assert starts.get(1) == 0 and starts.get(2, 0) > 0, f"{gid} did not resume from its checkpoint: {lines}"
        assert any(line.startswith("attempt=1 term") for line in lines), lines
        count = (run_dir_of(work, gid) / "count").read_text().strip()
        assert count == str(LONG_STEPS), (gid, count)
    assert len(details[survivor_gid]["attempts"]) == 1
    # the short runs ran once, where they were placed first
    for gid, d in details.items():
        if gid not in longs:
            assert len(d["attempts"]) == 1 and not [e for e in d["events"] if e["kind"] == "moved"], (gid, d["attempts"])

    # the two emptied jobs left squeue while the third still worked; the third lived to the end
    emptied = {placement[g] for g in moved}
    assert survivor not in emptied and len(emptied) == 2, (emptied, survivor)
    survivor_end = details[survivor_gid]["ended_at"]
    last_move_end = max(r["ended_at"] for g, r in runs.items() if g in moved)
    for name in emptied:
        node = all_nodes[name]
        job_id = node["job_id"]
        assert job_id and job_id in sampler.first_seen, (node, sampler.first_seen)
        assert job_id not in still_live, f"emptied job {job_id} ({name}) still in squeue at the end: {squeue(prefix)}"
        assert not node["live"] and node.get("ended_at"), node
        gone_at = sampler.last_seen[job_id]
        assert gone_at < survivor_end and gone_at < last_move_end, \
            f"emptied job {job_id} was in squeue until {gone_at - began:.0f} s, its runs ended {last_move_end - began:.0f} s"
    assert sampler.last_seen.get(survivor_job, 0) >= survivor_end - 2, (survivor_job, sampler.last_seen, survivor_end)
    timeline = {gid: (round(sorted(details[gid]["attempts"], key=lambda a: a["number"])[0]["ended_at"] - began),
                      round(sampler.last_seen[all_nodes[placement[gid]]["job_id"]] - began)) for gid in moved}
    print(f"short runs done at {shorts_done_at - began:.0f} s; moved run -> (stopped at, its job gone from squeue at) s: "
          f"{timeline}; survivor {survivor_gid} ended at {survivor_end - began:.0f} s")
