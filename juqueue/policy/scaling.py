"""How many nodes a cluster needs: pure arithmetic over demand and what exists.

Pending nodes count as capacity (a job waiting in SLURM's queue will come), waiting runs
(dependencies not met) are not demand, and `max_jobs` is never exceeded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ClusterLoad:
    ready_queued: int  # runs that could start now
    num_slots: int
    max_jobs: int
    free_slots_accepting: int  # free slots on live nodes that take runs (up or starting)
    live_nodes: int  # every node that bills or will: pending, starting, up, draining
    replacements_due: int = 0  # draining nodes whose runs will need a home


def nodes_to_start(load: ClusterLoad, paused: bool = False) -> int:
    if paused:
        return 0
    unmet = load.ready_queued - load.free_slots_accepting
    wanted = math.ceil(unmet / load.num_slots) if unmet > 0 else 0
    wanted = max(wanted, load.replacements_due)
    room = load.max_jobs - load.live_nodes
    return max(0, min(wanted, room))


def idle_nodes_to_stop(idle_since: dict[str, float], now: float, idle_timeout_s: float, keep: int = 0,
                       ready_waiting: int = 0, accepting: set[str] | None = None) -> list[str]:
    """Empty nodes idle longer than the timeout, oldest idle first; `keep` of them stay.

    While ready runs wait for the cluster, an idle node that accepts runs is about to get
    one: then none is stopped (the runs keep their cluster's nodes).
    """
    if ready_waiting and (accepting is None or accepting & set(idle_since)):
        return []
    expired = sorted((since, name) for name, since in idle_since.items() if now - since >= idle_timeout_s)
    names = [name for _, name in expired]
    return names[: max(0, len(names) - keep)] if keep else names
