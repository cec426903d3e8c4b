"""The soak's fault schedule: which fault hits when, drawn from a seed (pure).

The same seed and length give the same schedule, so a soak that found a violation can be run
again. Faults come one at a time at random gaps; every kind the soak can inject is drawn at least
once when the soak is long enough (the schedule starts with a shuffled round of all kinds, then
draws by weight). The disk-full phases come in the middle, in order (run dirs, then the whole work
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
                  mean_gap_s: float = 8.0, quiet_tail_s: float = 45.0) -> list[Fault]:
    """Faults over [0, duration_s - quiet_tail_s); the disk phases near the middle when `disk`."""
    rng = random.Random(seed)
    kinds = dict(LOCAL_KINDS, **(SLURM_KINDS if slurm else {}))
    first_round = list(kinds)
    rng.shuffle(first_round)
    end = max(0.0, duration_s - quiet_tail_s)
    faults: list[Fault] = []
    t = 5.0
    names, weights = list(kinds), list(kinds.values())
    while True:
        t += rng.expovariate(1.0 / mean_gap_s)
        if t >= end:
            break
        kind = first_round.pop() if first_round else rng.choices(names, weights)[0]
        faults.append(Fault(round(t, 2), kind))
    if disk and end > 0:
        middle = end / 2
        faults += [Fault(round(middle, 2), DISK_PHASES[0]), Fault(round(middle + min(30.0, end / 6), 2), DISK_PHASES[1])]
    return sorted(faults, key=lambda f: f.at)
