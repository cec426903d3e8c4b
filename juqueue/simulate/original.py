"""The scale-in rule of the original JuQueue (0.0.15), for comparison only.

Its cluster manager asked its scaling policy for a node count after every event
(`maximize_running`: ceil(unfinished runs / slots), at most `max_jobs`) and, while it held more
nodes than that, removed at once the "least important" node: one still queued at the scheduler
first, else the running node with the fewest runs, whose runs were cancelled and queued again.
There was no cooldown, no cost check and no reserved slot. The simulator's `original` policy is
this function plus the same placement and scale-out as JuQueue's (without surplus).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class HeldNode:
    name: str
    pending: bool  # submitted, not started: bills nothing, its removal interrupts nothing
    occupancy: int  # runs on it


def original_nodes_to_stop(nodes: Sequence[HeldNode], target: int) -> list[str]:
    """Nodes to remove now so that at most `target` remain: pending first, then fewest runs
    (ties: the earlier name, i.e. the older node, as the original iterated its nodes in order)."""
    excess = len(nodes) - max(0, target)
    if excess <= 0:
        return []
    order = sorted(nodes, key=lambda n: (0 if n.pending else 1, 0 if n.pending else n.occupancy, n.name))
    return [n.name for n in order[:excess]]
