"""The soak's fault schedule: which fault hits when, drawn from a seed (pure).

The same seed and length give the same schedule, so a soak that found a violation can be run
again. Faults come one at a time: every kind the soak can inject once at a random time, and more
drawn by weight at random gaps. The disk-full phases come in the middle, in order (run dirs, then the whole work
dir), and the last stretch is left free of faults so every run can end.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

#: fault kinds a local soak injects, with their weights after the first round
LOCAL_KINDS: dict[str, float] = {
    "kill_worker": 2, "kill_serve": 1, "stop_worker_short": 1, "stop_worker_long": 1,
    "kill_broker": 1, "reset_broker": 0.5, "reload_edit": 1.5, "cancel": 1, "requeue": 1,
    "hold_release": 1, "drain_node": 1, "stop_node": 1, "add_runs": 2,
}
#: kinds only a SLURM soak injects (a job's wall time is reached by the workload itself)
SLURM_KINDS: dict[str, float] = {"scancel": 2}
DISK_PHASES = ("disk_full_run_dirs", "disk_full_work_dir")


@dataclass(frozen=True)
class Fault:
    at: float          # seconds after the soak's start
    kind: str


def make_schedule(seed: int, duration_s: float, slurm: bool = False, disk: bool = True,
                  mean_gap_s: float = 12.0, quiet_tail_s: float = 45.0) -> list[Fault]:
    """Faults over [5 s, duration_s - quiet_tail_s): every kind once at a random time, more drawn
    by weight about every `mean_gap_s`; the disk phases near the middle when `disk`."""
    rng = random.Random(seed)
    kinds = dict(LOCAL_KINDS, **(SLURM_KINDS if slurm else {}))
    start, end = 5.0, max(5.0, duration_s - quiet_tail_s)
    if end <= start:
        return []
    faults = [Fault(round(rng.uniform(start, end), 2), kind) for kind in kinds]
    names, weights = list(kinds), list(kinds.values())
    t = start
    while True:
        t += rng.expovariate(1.0 / mean_gap_s)
        if t >= end:
            break
        faults.append(Fault(round(t, 2), rng.choices(names, weights)[0]))
    if disk:
        middle = (start + end) / 2
        faults += [Fault(round(middle, 2), DISK_PHASES[0]), Fault(round(middle + min(30.0, (end - start) / 6), 2), DISK_PHASES[1])]
    return sorted(faults, key=lambda f: f.at)
