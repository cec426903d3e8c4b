"""The run engine against a real SLURM: nodes are SLURM jobs (sbatch/squeue/scancel).

scripts/setup-test-slurm.sh starts a single-node SLURM (partition `debug`). Without
`sbatch` these tests are skipped with a loud reason; with CI=true they fail instead.
Every test uses its own job-name prefix and cancels its leftover jobs (`slurm_jobs`).
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from helpers import REPO, Server, write_defs
from slurm_helpers import (
    all_node_files,
    checkpoint_counter,
    live_jobs,
    max_overlap,
    nodes,
    require_slurm,
    run_dir_of,
    slurm_cluster,
    slurm_jobs,  # noqa: F401  (fixture)
    squeue,
    starts_of,
    status,
    wait_until,
)

pytestmark = [pytest.mark.slurm, pytest.mark.integration]


@pytest.fixture(autouse=True)
def need_slurm() -> None:
    require_slurm()


class SqueueSampler:
    """Samples squeue for a job-name prefix in the background: the most live jobs seen at once."""

    def __init__(self, prefix: str, interval: float = 0.5) -> None:
        self.prefix, self.interval = prefix, interval
        self.max_live = 0
        self.samples = 0
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                jobs = live_jobs(self.prefix)
            except Exception:  # noqa: BLE001 - a failed sample is just skipped
                jobs = None
            if jobs is not None:
                self.samples += 1
                self.max_live = max(self.max_live, len(jobs))
                self.seen.update(j[0] for j in jobs)
            self._stop.wait(self.interval)

    def __enter__(self) -> "SqueueSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)


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
        assert (work / "runs" / r["experiment"] / r["id"] / "logs" / "attempt-1.out").exists(), r
    # the runs ran inside SLURM jobs: every node has a job id that the sampler saw in squeue
    assert all_nodes, "no SLURM nodes recorded"
    node_jobs = {n["name"]: n["job_id"] for n in all_nodes}
    assert all(node_jobs.values()), all_nodes
    assert {r["node"] for r in runs} <= set(node_jobs), (runs, all_nodes)
    assert set(node_jobs.values()) & sampler.seen, (node_jobs, sampler.seen)
    out = (work / "runs" / "helloworld" / "read_file" / "logs" / "attempt-1.out").read_text()
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
