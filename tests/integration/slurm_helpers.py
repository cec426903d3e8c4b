"""Shared pieces of the real-SLURM integration tests (scripts/setup-test-slurm.sh starts one).

Every test gets its own SLURM job-name prefix; `slurm_jobs` cancels whatever jobs with that
prefix are still queued or running when the test ends, so no test leaves node hours behind.
"""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import Server  # noqa: E402
from machine_setup import wait_for_machine_setup  # noqa: E402
from juqueue.paths import WorkDir
from support.slurm import cancel_and_wait

NOT_RUN = "SLURM tests NOT RUN: sbatch is not on PATH (run scripts/setup-test-slurm.sh as root)"


def require_slurm() -> None:
    """Skip loudly without sbatch; with CI=true that is a failure, so SLURM tests never pass silently."""
    wait_for_machine_setup()
    if shutil.which("sbatch") is None or shutil.which("squeue") is None:
        if os.environ.get("CI") == "true":
            pytest.fail(NOT_RUN + " -- CI=true requires them")
        pytest.skip(NOT_RUN)


def unique_job_name(tag: str) -> str:
    return f"jqi{tag}{uuid.uuid4().hex[:6]}"


@pytest.fixture
def slurm_jobs(request) -> Iterator[str]:
    """A unique job-name prefix for the test; its leftover jobs are cancelled afterwards."""
    require_slurm()
    prefix = unique_job_name(request.node.name.replace("test_", "")[:6].replace("_", ""))
    yield prefix
    cancel_and_wait(prefix, timeout=30)


def nodes(server: Server) -> list[dict]:
    resp = server.api("GET", "/api/nodes", params={"ended_limit": 500})
    resp.raise_for_status()
    return resp.json()


def status(server: Server) -> dict:
    resp = server.api("GET", "/api/status")
    resp.raise_for_status()
    return resp.json()


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals [start, end] that are open at once."""
    points = []
    for start, end in intervals:
        points.append((start, 1))
        points.append((end, -1))
    best = cur = 0
    for _t, step in sorted(points, key=lambda p: (p[0], p[1])):  # an end before a start at the same instant
        cur += step
        best = max(best, cur)
    return best


def node_files(work_dir: Path, node: str) -> str:
    """A node's logs for failure messages."""
    out = []
    base = WorkDir(work_dir).node_dir(node)
    for name in ("job.log", "worker.log", "failure", "node.json"):
        path = base / name
        if path.exists():
            out.append(f"--- {path} ---\n{path.read_text(errors='replace')[-3000:]}")
    return "\n".join(out)


def all_node_files(work_dir: Path) -> str:
    base = WorkDir(work_dir).nodes_dir
    if not base.exists():
        return "(no nodes dir)"
    return "\n".join(node_files(work_dir, d.name) for d in sorted(base.iterdir()))


def checkpoint_counter(total_steps: int, step_s: float = 1.0) -> str:
    """A shell command that counts steps into $JUQUEUE_RUN_DIR/count, continues from the last
    checkpoint, records where each attempt started, and exits 0 on SIGTERM (a checkpointing program)."""
    script = textwrap.dedent(f"""\
        f="$JUQUEUE_RUN_DIR/count"
        n=$(cat "$f" 2>/dev/null || echo 0)
        echo "attempt=$JUQUEUE_ATTEMPT start=$n slot=$JUQUEUE_SLOT host=$(hostname) pid=$$" >> "$JUQUEUE_RUN_DIR/starts"
        trap 'echo "attempt=$JUQUEUE_ATTEMPT term at=$n" >> "$JUQUEUE_RUN_DIR/starts"; exit 0' TERM
        while [ "$n" -lt {total_steps} ]; do
            sleep {step_s} & wait $!
            n=$((n + 1))
            echo "$n" > "$f.tmp" && mv "$f.tmp" "$f"
        done
        echo "attempt=$JUQUEUE_ATTEMPT done at=$n" >> "$JUQUEUE_RUN_DIR/starts"
        """)
    return script


def run_dir_of(work_dir: Path, gid: str) -> Path:
    """The run's directory (JUQUEUE_RUN_DIR)."""
    experiment, run_id = gid.split("@", 1)
    return WorkDir(work_dir).run_dir(experiment, run_id)


def starts_of(work_dir: Path, gid: str) -> list[str]:
    path = run_dir_of(work_dir, gid) / "starts"
    return path.read_text().splitlines() if path.exists() else []
