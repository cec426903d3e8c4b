"""`juqueue simulate`'s options turned into a workload, a cluster and the policies to compare.

Every option arrives as the text the user typed, so that a bad value is one error naming the
flag (SimulationInputError), never a usage screen. Which workload: exactly one of
--from-work-dir, --durations, --runs; without them, the def dir's runs. Which cluster:
--def-dir's clusters.yaml (--cluster, else the one the runs use), else the settings a work
dir's nodes were started with, else --num-slots and --max-jobs (which override either).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from pathlib import Path

from juqueue.definitions.models import ClusterSpec
from juqueue.policy.duration import parse_duration
from juqueue.simulate.distributions import SimulationInputError, parse_distribution
from juqueue.simulate.sources import load_cluster_specs, load_def_dir, load_durations_csv, load_work_dir, pick_cluster
from juqueue.simulate.state import PolicyVariant, policy_variants
from juqueue.simulate.workload import Conditions, Workload, conditions_from_spec, generated_workload


@dataclass(frozen=True)
class SimulateOptions:
    def_dir: Path | None = None
    cluster: str | None = None
    from_work_dir: Path | None = None
    durations: Path | None = None
    runs: str | None = None
    duration_dist: str | None = None
    default_duration: str | None = None
    num_slots: str | None = None
    max_jobs: str | None = None
    queue_wait_dist: str | None = None
    wall_time: str | None = None
    restart_cost: str | None = None
    checkpoint_interval: str | None = None
    checkpoint_on_term: bool = False
    duration_hints: str | None = None
    move_cooldown: str | None = None
    consolidate_after: str | None = None
    tick: str | None = None
    replacement_lead: str | None = None
    seed: str | None = None
    policies: tuple[str, ...] = ()


@dataclass(frozen=True)
class Inputs:
    workload: Workload
    conditions: Conditions
    policies: list[PolicyVariant]
    seed: int


def resolve(o: SimulateOptions) -> Inputs:
    seed = _whole("--seed", o.seed, 1, minimum=0)
    sources = [flag for flag, value in (("--from-work-dir", o.from_work_dir), ("--durations", o.durations),
                                        ("--runs", o.runs)) if value is not None]
    if len(sources) > 1:
        raise SimulationInputError(f"give one workload, not {' and '.join(sources)}")
    if not sources and o.def_dir is None:
        raise SimulationInputError("no workload: give --def-dir D (its runs), --from-work-dir W, --durations FILE.csv "
                                   "or --runs N --duration-dist D")
    if o.duration_dist is not None and o.runs is None:
        raise SimulationInputError("--duration-dist goes with --runs N")
    if o.cluster is not None and o.def_dir is None and o.from_work_dir is None:
        raise SimulationInputError("--cluster names a cluster of --def-dir's clusters.yaml (or of --from-work-dir's runs)")

    spec: ClusterSpec | None = None
    if o.from_work_dir is not None:
        recorded, workload = load_work_dir(o.from_work_dir, o.cluster)
        spec = recorded
        if o.def_dir is not None:
            specs = load_cluster_specs(o.def_dir)
            name = o.cluster or (recorded.name if recorded is not None else None)
            spec = pick_cluster(specs, name, (), str(Path(o.def_dir) / "clusters.yaml"))
    elif o.durations is not None:
        workload = load_durations_csv(o.durations)
    elif o.runs is not None:
        if o.duration_dist is None:
            raise SimulationInputError("--runs N needs --duration-dist (fixed:S, uniform:lo=S,hi=S or "
                                       "lognormal:median=S,sigma=X)")
        dist = parse_distribution(o.duration_dist, "--duration-dist", ("fixed", "uniform", "lognormal"))
        workload = generated_workload(_whole("--runs", o.runs, None, minimum=1), dist, seed)
    else:
        default = _seconds("--default-duration", o.default_duration)
        spec, workload = load_def_dir(o.def_dir, o.cluster, default)  # type: ignore[arg-type]
    if spec is None and o.def_dir is not None:
        spec = pick_cluster(load_cluster_specs(o.def_dir), o.cluster, (), str(Path(o.def_dir) / "clusters.yaml"))
    spec = _sized(spec, o)
    workload = _hinted(workload, o.duration_hints, seed)

    wall = _seconds("--wall-time", o.wall_time)
    if wall is None and spec.type == "slurm" and spec.time:
        wall = _slurm_time(spec.time, spec.name)
    queue_wait = None
    if o.queue_wait_dist is not None:
        queue_wait = parse_distribution(o.queue_wait_dist, "--queue-wait-dist", ("exp", "fixed"))
        workload = Workload(workload.runs, workload.note)  # the given waits replace any recorded latencies
    conditions = conditions_from_spec(
        spec, wall, queue_wait=queue_wait, restart_cost_s=_seconds("--restart-cost", o.restart_cost),
        checkpoint_interval_s=_seconds("--checkpoint-interval", o.checkpoint_interval),
        checkpoint_on_term=True if o.checkpoint_on_term else None,
        move_cooldown_s=_seconds("--move-cooldown", o.move_cooldown),
        consolidate_after_s=_seconds("--consolidate-after", o.consolidate_after), tick_s=_tick(o.tick),
        replacement_lead_s=_seconds("--replacement-lead", o.replacement_lead))
    return Inputs(workload, conditions, _policies(conditions, o.policies), seed)


def _hinted(workload: Workload, hints: str | None, seed: int) -> Workload:
    """`--duration-hints`: what the policy is told of each run's duration (its `duration`):
    `none` nothing, `exact` its duration, `noisy:sigma=X` its duration times a lognormal error
    of median 1 (drawn per run, seeded). Without the flag, what the workload said."""
    if hints is None:
        return workload
    text = hints.strip().lower()
    if text == "none":
        told: list[float | None] = [None] * len(workload.runs)
    elif text == "exact":
        told = [r.duration_s for r in workload.runs]
    else:
        kind, _, rest = text.partition(":")
        key, eq, value = rest.partition("=")
        try:
            sigma = float(value) if kind == "noisy" and eq and key.strip() == "sigma" else -1.0
        except ValueError:
            sigma = -1.0
        if not sigma >= 0 or not math.isfinite(sigma):
            raise SimulationInputError(f"--duration-hints {hints!r}: expected none, exact or noisy:sigma=X (X >= 0)")
        rng = random.Random(f"duration-hints-{seed}")
        told = [r.duration_s * math.exp(rng.gauss(0.0, sigma)) for r in workload.runs]
    return Workload(tuple(replace(r, expected_s=e) for r, e in zip(workload.runs, told)), workload.note,
                    workload.latencies)


def _sized(spec: ClusterSpec | None, o: SimulateOptions) -> ClusterSpec:
    """The cluster with --num-slots/--max-jobs applied; without a cluster both are needed."""
    slots = _whole("--num-slots", o.num_slots, None, minimum=1)
    jobs = _whole("--max-jobs", o.max_jobs, None, minimum=1)
    if spec is None:
        if slots is None or jobs is None:
            raise SimulationInputError("no cluster: give --def-dir D (its clusters.yaml) or --num-slots K --max-jobs M")
        return ClusterSpec(name="sim", type="slurm", num_slots=slots, max_jobs=jobs)
    changes = {k: v for k, v in (("num_slots", slots), ("max_jobs", jobs)) if v is not None}
    return spec.model_copy(update=changes) if changes else spec


def _policies(conditions: Conditions, names: tuple[str, ...]) -> list[PolicyVariant]:
    every = policy_variants(conditions)
    if not names:
        return every
    by_name = {p.name: p for p in every}
    for name in names:
        if name not in by_name:
            raise SimulationInputError(f"--policy {name!r}: unknown; known: {', '.join(by_name)}")
    return [p for p in every if p.name in set(names)]


def _seconds(flag: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        number = float(text)
    except ValueError:
        number = None
    try:
        return parse_duration(number if number is not None else text)
    except ValueError:
        raise SimulationInputError(f"{flag} {text!r}: expected seconds (a number >= 0) or HH:MM:SS") from None


def _tick(text: str | None) -> float:
    value = _seconds("--tick", text)
    if value is None:
        return 2.0
    if value <= 0:
        raise SimulationInputError(f"--tick {text!r}: expected seconds > 0")
    return value


def _whole(flag: str, text: str | None, default: int | None, minimum: int) -> int | None:
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise SimulationInputError(f"{flag} {text!r}: expected a whole number") from None
    if value < minimum:
        raise SimulationInputError(f"{flag} {text!r}: expected at least {minimum}")
    return value


def _slurm_time(text: str, cluster: str) -> float | None:
    from juqueue.backends.slurm_parse import SlurmParseError, parse_time

    try:
        value = parse_time(text)
    except SlurmParseError:
        raise SimulationInputError(f"cluster {cluster!r}: time {text!r} is no SLURM time limit (give --wall-time)") from None
    return float(value) if value is not None else None
