"""What is simulated: the runs (work, what the policy is told, arrival, dependencies) and the
cluster with its conditions (queue wait, wall time, restarts, checkpoints). Plain data; the
readers that fill it from a def dir, a work dir or a CSV live in `juqueue.simulate.sources`."""

from __future__ import annotations

import random
from dataclasses import dataclass

from juqueue.definitions.models import ClusterSpec
from juqueue.policy.scaling import ScalingPolicy
from juqueue.simulate.distributions import Distribution, SimulationInputError


@dataclass(frozen=True)
class SimRun:
    """One run: `duration_s` is the work it needs (seconds on one slot, without restarts);
    `expected_s` is what the policy is told (its `duration`); None: unknown, then the policy
    uses its experiment's median of completed runs, as the controller does."""

    gid: str
    duration_s: float
    expected_s: float | None = None
    arrival_s: float = 0.0  # when it is queued, seconds after the start
    movable: bool = True
    depends_on: tuple[str, ...] = ()  # gids of runs in the same workload
    slots: int = 1
    experiment: str = "sim"

    def __post_init__(self) -> None:
        if not self.duration_s >= 0:
            raise SimulationInputError(f"run {self.gid}: negative duration {self.duration_s!r}")
        if self.expected_s is not None and not self.expected_s >= 0:
            raise SimulationInputError(f"run {self.gid}: negative expected duration {self.expected_s!r}")
        if not self.arrival_s >= 0:
            raise SimulationInputError(f"run {self.gid}: negative arrival {self.arrival_s!r}")
        if isinstance(self.slots, bool) or not isinstance(self.slots, int) or self.slots < 1:
            raise SimulationInputError(f"run {self.gid}: slots must be a whole number of at least 1, got {self.slots!r}")


@dataclass(frozen=True)
class NodeLatency:
    """How long a submitted node takes: `queue_s` waiting (bills nothing), then `boot_s`
    billing before its worker takes runs (a local worker's start-up)."""

    queue_s: float = 0.0
    boot_s: float = 0.0


@dataclass(frozen=True)
class Workload:
    runs: tuple[SimRun, ...]
    note: str = ""  # what the reader did (runs without a duration, runs skipped), shown by the CLI
    latencies: tuple[NodeLatency, ...] = ()  # replayed node start latencies (--from-work-dir), in order

    @property
    def work_s(self) -> float:
        """Slot-seconds of work: each run's duration times its slots."""
        return sum(r.duration_s * r.slots for r in self.runs)


def generated_workload(n: int, dist: Distribution, seed: int) -> Workload:
    """`--runs N --duration-dist D`: N runs of one experiment, all queued at the start, their
    durations drawn from D (the policy is not told them)."""
    if n < 1:
        raise SimulationInputError(f"--runs {n}: expected at least 1")
    rng = random.Random(f"durations-{seed}")
    width = len(str(n - 1))
    return Workload(tuple(SimRun(f"sim@r{i:0{width}d}", dist.sample(rng)) for i in range(n)))


@dataclass(frozen=True)
class Conditions:
    """Everything about the cluster the simulator needs besides the policy under test.

    Wall time: a node drains `signal_lead_s` before its limit (the controller's wall-time
    warning), its runs are interrupted there. A restarted attempt spends `restart_cost_s`
    before it makes progress. Checkpoints: None, an interrupted attempt keeps nothing; 0, it
    keeps all its progress; S > 0, progress is saved every S seconds of it; with
    `checkpoint_on_term` a stopped attempt keeps all its progress. Replacements (wall
    time without a gap, policy.replacement): `replacement_lead_s` before a node's warning; 0: never."""

    num_slots: int
    max_jobs: int
    scaling_policy: ScalingPolicy = ScalingPolicy.MAXIMIZE_RUNNING
    min_saturation: float = 0.5
    idle_timeout_s: float = 30.0
    grace_period_s: float = 30.0
    consolidate_after_s: float = 60.0
    move_cooldown_s: float = 300.0
    wall_time_s: float | None = None
    signal_lead_s: float = 0.0
    queue_wait: Distribution | None = None  # None: nodes start at once (or the replayed latencies)
    restart_cost_s: float = 0.0
    checkpoint_interval_s: float | None = None
    checkpoint_on_term: bool = False  # runs save their state on SIGTERM: a stop loses nothing
    tick_s: float = 2.0
    replacement_lead_s: float = 600.0
    name: str = "sim"

    def __post_init__(self) -> None:
        if self.num_slots < 1:
            raise SimulationInputError(f"--num-slots {self.num_slots}: expected at least 1")
        if self.max_jobs < 1:
            raise SimulationInputError(f"--max-jobs {self.max_jobs}: expected at least 1")
        for flag, value in (("--wall-time", self.wall_time_s), ("--restart-cost", self.restart_cost_s),
                            ("--checkpoint-interval", self.checkpoint_interval_s),
                            ("--consolidate-after", self.consolidate_after_s), ("--move-cooldown", self.move_cooldown_s),
                            ("--replacement-lead", self.replacement_lead_s)):
            if value is not None and not value >= 0:
                raise SimulationInputError(f"{flag} {value!r}: expected seconds >= 0")
        if not self.tick_s > 0:
            raise SimulationInputError(f"--tick {self.tick_s!r}: expected seconds > 0")
        if self.wall_time_s is not None and self.wall_time_s - self.signal_lead_s <= 0:
            raise SimulationInputError(f"--wall-time {self.wall_time_s:g}: must exceed the cluster's "
                                       f"signal_lead ({self.signal_lead_s:g} s)")


def conditions_from_spec(spec: ClusterSpec, wall_time_s: float | None, **overrides: object) -> Conditions:
    """A cluster from clusters.yaml (or a ClusterSpec built from --num-slots/--max-jobs, whose
    defaults are the model's own). `signal_lead` applies to slurm clusters only, as in the
    controller; overrides are Conditions fields (None means: keep the cluster's)."""
    values: dict[str, object] = dict(
        num_slots=spec.num_slots, max_jobs=spec.max_jobs, scaling_policy=spec.scaling_policy,
        min_saturation=spec.min_saturation, idle_timeout_s=spec.idle_timeout, grace_period_s=spec.grace_period,
        consolidate_after_s=spec.consolidate_after, move_cooldown_s=spec.move_cooldown, wall_time_s=wall_time_s,
        restart_cost_s=spec.restart_cost, checkpoint_interval_s=spec.checkpoint_interval,
        checkpoint_on_term=spec.checkpoint_on_term,
        replacement_lead_s=spec.replacement_lead,
        signal_lead_s=float(spec.signal_lead) if spec.type == "slurm" and wall_time_s is not None else 0.0,
        name=spec.name,
    )
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Conditions(**values)  # type: ignore[arg-type]
