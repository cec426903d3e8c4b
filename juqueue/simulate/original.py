"""The scale-in rule of the original JuQueue (0.0.15), for comparison only.

Its cluster manager asked its scaling policy for a node count after every event
(`maximize_running`: ceil(unfinished runs / slots), at most `max_jobs`) and, while it held more
nodes than that, removed at once the "least important" node: one still queued at the scheduler
first, else the running node with the fewest runs, whose runs were cancelled and queued again.
There was no cooldown, no cost check and no reserved slot. The simulator's `original` policy is
this function plus the same placement and scale-out as JuQueue's (without surplus): `OriginalStep`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from juqueue.policy.scaling import ScalingPolicy, target_nodes
from juqueue.simulate.cluster import SimCluster
from juqueue.simulate.dispatch import Dispatch
from juqueue.simulate.state import NodeState, SimNode


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


class OriginalStep:
    """The original's batch step over the simulated cluster (it has no ticks and no replacements);
    `end_node` is the simulation's (which a test may watch)."""

    def __init__(self, cluster: SimCluster, dispatch: Dispatch, end_node: Callable[[SimNode, float], None]) -> None:
        self.cluster, self.dispatch, self.end_node = cluster, dispatch, end_node

    def after_batch(self, t: float, tick: bool, check: bool) -> None:
        if self.cluster.dirty_placement:
            self.step(t)

    def replace(self, t: float) -> bool:
        return False  # the original never replaces a node

    def step(self, t: float) -> None:
        """After every batch: kill above the count at once (original_nodes_to_stop), place, scale out."""
        cluster = self.cluster
        cluster.dirty_placement = False
        c = cluster.c
        target = target_nodes(cluster.live_slots + cluster.ready.slots, c.num_slots, c.max_jobs,
                              ScalingPolicy.MAXIMIZE_RUNNING)
        held = [HeldNode(n.name, n.state is NodeState.PENDING, len(n.runs)) for n in cluster.nodes.values()] \
            if len(cluster.nodes) > target else []  # at or below the count there is nothing to list
        for name in original_nodes_to_stop(held, target):
            node = cluster.nodes[name]
            if node.runs:
                cluster.result.nodes_emptied += 1
            for run in list(node.runs.values()):
                cluster.interrupt(run, t)
                cluster.result.moves += 1
            self.end_node(node, t)
        self.dispatch.place(t)
        self.dispatch.scale_out(t, target)
