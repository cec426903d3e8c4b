"""How many nodes a cluster needs: pure arithmetic over demand and what exists.

Pending nodes count as capacity (a job waiting in SLURM's queue will come), waiting runs
(dependencies not met) are not demand, and `max_jobs` is never exceeded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum


class ScalingPolicy(str, Enum):
    """`scaling_policy` in clusters.yaml: how many nodes a given demand is worth."""

    MAXIMIZE_RUNNING = "maximize_running"  # every ready run gets a slot: ceil(demand / num_slots)
    MINIMIZE_JOBS = "minimize_jobs"  # only nodes the runs fill: floor(demand / num_slots)
    MIN_SATURATION = "min_saturation"  # the remainder gets a node only when it fills > min_saturation of it


def target_nodes(demand_slots: int, num_slots: int, max_jobs: int,
                 policy: ScalingPolicy | str = ScalingPolicy.MAXIMIZE_RUNNING, min_saturation: float = 0.0) -> int:
    """The node count a cluster should have for `demand_slots` (slots of live + ready runs).

    Whatever the policy, at least one node while demand > 0 (a small sweep must never wait
    forever for a node it cannot fill), never more than `max_jobs`, none without demand.
    """
    policy = ScalingPolicy(policy)
    if num_slots < 1:
        raise ValueError(f"num_slots must be at least 1, got {num_slots}")
    if not 0.0 <= min_saturation <= 1.0:
        raise ValueError(f"min_saturation must be between 0.0 and 1.0, got {min_saturation}")
    if demand_slots <= 0 or max_jobs <= 0:
        return 0
    full, remainder = divmod(demand_slots, num_slots)
    if policy is ScalingPolicy.MAXIMIZE_RUNNING:
        extra = 1 if remainder else 0
    elif policy is ScalingPolicy.MINIMIZE_JOBS:
        extra = 0
    else:
        extra = 1 if remainder / num_slots > min_saturation else 0
    return min(max_jobs, max(1, full + extra))


@dataclass(frozen=True)
class ClusterLoad:
    ready_queued: int  # runs that could start now
    num_slots: int
    max_jobs: int
    free_slots_accepting: int  # free slots on live nodes that take runs (up or starting)
    live_nodes: int  # every node that bills or will: pending, starting, up, draining
    replacements_due: int = 0  # draining nodes whose runs will need a home
    accepting_nodes: int | None = None  # pending, starting and up nodes: what `target` is compared with
    surplus_free_slots: int = 0  # free slots on nodes above the target (see consolidation)
    unfit_nodes: int = 0  # new nodes for ready runs that fit no live node (slot_demand.nodes_for_unplaced)


def nodes_to_start(load: ClusterLoad, paused: bool = False, target: int | None = None) -> int:
    """Nodes to submit now. With a `target` (from `target_nodes`) the accepting nodes never
    grow past it, and nothing starts while a surplus node still has a free slot: a run waits
    for a slot that is already paid for rather than bill one more node. `unfit_nodes` are
    started even then (the packing tried the surplus slots: those runs fit none of them),
    and even when the free slots add up to the ready demand; the target still caps them."""
    if paused:
        return 0
    unmet = load.ready_queued - load.free_slots_accepting
    wanted = math.ceil(unmet / load.num_slots) if unmet > 0 else 0
    wanted = max(wanted, load.replacements_due, load.unfit_nodes)
    room = load.max_jobs - load.live_nodes
    if target is not None:
        if load.accepting_nodes is None:
            raise ValueError("nodes_to_start with a target needs ClusterLoad.accepting_nodes")
        if load.surplus_free_slots > 0:
            if not load.unfit_nodes:
                return 0
            wanted = load.unfit_nodes
        room = min(room, target - load.accepting_nodes)
    return max(0, min(wanted, room))


def idle_nodes_to_stop(idle_since: dict[str, float], now: float, idle_timeout_s: float, keep: int = 0,
                       ready_waiting: int = 0, accepting: set[str] | None = None) -> list[str]:
    """Empty nodes idle longer than the timeout, oldest idle first; `keep` of them stay.

    While ready runs wait for the cluster, an idle node that accepts runs is about to get
    one: then none is stopped (the runs keep their cluster's nodes). This is also the whole
    of `consolidation: idle`: that mode never moves a run, it only lets empty nodes time out.
    """
    if ready_waiting and (accepting is None or accepting & set(idle_since)):
        return []
    expired = sorted((since, name) for name, since in idle_since.items() if now - since >= idle_timeout_s)
    names = [name for _, name in expired]
    return names[: max(0, len(names) - keep)] if keep else names
