"""The soak's definitions: clusters.yaml and experiments of resumable runs, and the edits a reload
brings (pure text, written by `write_definitions`).

Runs last 4–40 s of work and come in waves (the first, then each `add_runs`), all in one experiment
`soak` (so its run dirs are one directory, `W/soak`, that the disk-full phase can fill alone), so
nodes fill and empty and consolidation has surplus to act on. Every tenth run exits 3: the checker expects it
`failed`, and every other run `completed`, unless the soak cancelled it. Edits only ever add runs
or change a run's command (which restarts it as `redefined`) — never remove one — so every run
the soak ever defined is still there at the end.
"""

from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

EXPERIMENT = "soak"
FAILING_EVERY = 10
FAILING_EXIT = 3


@dataclass
class Workload:
    """What the soak defined so far: each run's id, work and exit code, by wave."""

    journal_dir: Path
    slurm: bool = False
    partition: str = "debug"
    job_name: str = "soak"  # SLURM job name prefix: what the checker looks for in squeue
    runs: list[tuple[str, float, int]] = field(default_factory=list)  # (run id, work s, exit code)
    waves: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    @property
    def cluster(self) -> str:
        return "soak_slurm" if self.slurm else "soak_local"

    def add_wave(self, n: int) -> list[str]:
        """n more runs; their global ids."""
        added = []
        for i in range(n):
            run_id = f"w{self.waves:02d}r{i:02d}"
            work = round(self.rng.uniform(4, 40), 2)
            code = FAILING_EXIT if len(self.runs) % FAILING_EVERY == FAILING_EVERY - 3 else 0
            self.runs.append((run_id, work, code))
            added.append(f"{EXPERIMENT}@{run_id}")
        self.waves += 1
        return added

    def edit_one(self) -> str | None:
        """Change one run's work (its command changes: a live run restarts as `redefined`); its global id."""
        if not self.runs:
            return None
        i = self.rng.randrange(len(self.runs))
        run_id, work, code = self.runs[i]
        self.runs[i] = (run_id, round(work + 1.0, 2), code)
        return f"{EXPERIMENT}@{run_id}"

    def expected_exit(self) -> dict[str, int]:
        """global id -> the exit code its command decides."""
        return {f"{EXPERIMENT}@{run_id}": code for run_id, _w, code in self.runs}

    def clusters_yaml(self) -> str:
        common = {
            "num_slots": 2, "max_jobs": 3, "idle_timeout": 5, "grace_period": 3,
            "consolidation": "aggressive", "consolidate_after": 4, "move_cooldown": 10,
            "checkpoint_on_term": True, "restart_cost": 1,
        }
        if self.slurm:
            spec = {"type": "slurm", **common, "partition": self.partition, "time": "00:03:00",
                    "python": sys.executable, "poll_interval": 2, "signal_lead": 65, "replacement_lead": 0,
                    "job_name": self.job_name}
        else:
            spec = {"type": "local", **common}
        return f"{self.cluster}:\n" + "".join(f"  {k}: {json.dumps(v)}\n" for k, v in spec.items())

    def experiment_yaml(self) -> str:
        lines = [f"experiment: {EXPERIMENT}", f"cluster: {self.cluster}", "max_retries: 0", "runs:"]
        for run_id, work, code in self.runs:
            cmd = [sys.executable, "-m", "juqueue.soak.resumable", "--work", str(work), "--exit", str(code),
                   "--journal", str(self.journal_dir)]
            lines.append(f"  - id: {run_id}")
            lines.append(f"    cmd: {json.dumps(cmd)}")
        return "\n".join(lines) + "\n"

    def write_definitions(self, def_dir: Path) -> None:
        """Every file as it stands now (written whole, then renamed: a reload never reads half a file)."""
        def_dir.mkdir(parents=True, exist_ok=True)
        texts = {"clusters.yaml": self.clusters_yaml(), f"{EXPERIMENT}.yaml": self.experiment_yaml()}
        for name, text in texts.items():
            tmp = def_dir / f".{name}.tmp"
            tmp.write_text(text)
            tmp.replace(def_dir / name)
