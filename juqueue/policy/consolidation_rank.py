"""Which accepting nodes are surplus, found without ranking every node: exactly the first
`excess` of them sorted by `surplus_rank`, at the cost of the few nodes near the front.

Why: a plan wants a few surplus nodes out of hundreds, but a node's rank needs its lost work
(a sum over its runs) and, for its tier, its refusal (lost against saved work, cooldowns). Lost
work only grows with time until one of the node's runs reaches a checkpoint (its work at risk
drops) or its wall-time warning comes within `consolidate_after` (it drops to 0). So the lost
work computed at some earlier instant is a lower bound for the same node object until the
first such drop, and it is kept on the node (`NodeSnapshot.memo`): a caller that hands in
unchanged nodes as the same objects (the simulator does) pays for a node only when it is near
the front or its bound ran out. Nodes are visited in order of their bound, each ranked exactly;
the visit stops once the next bound exceeds the lost work of the last surplus node found.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Callable

from juqueue.policy.consolidation_cost import lost_node_seconds, wall_time_near
from juqueue.policy.consolidation_model import NodeSnapshot, RunOnNode

__all__ = ["cheapest_surplus", "lost_lower_bound"]

Rank = Callable[[NodeSnapshot], tuple]


def cheapest_surplus(accepting: list[NodeSnapshot], excess: int, rank: Rank, consolidate_after_s: float,
                     now: float) -> list[NodeSnapshot]:
    """`sorted(accepting, key=rank)[:excess]` for `rank` = surplus_rank (tier, lost work, ...):
    empty nodes (tiers 0 and 1) first, then nodes with runs (tiers 2-4) by lost work."""
    empty = [n for n in accepting if n.is_empty]
    if len(empty) >= excess:
        return heapq.nsmallest(excess, empty, key=rank)
    out = sorted(empty, key=rank)
    want = excess - len(empty)
    after = consolidate_after_s
    heap = []
    for i, n in enumerate(accepting):
        if not n.is_empty:
            window = n.memo.get("lost")  # lost_lower_bound's fast case, inline: most nodes take it
            if window is not None and window[0] <= now < window[1] and window[2] == after:
                heap.append((window[3], False, i, n))
            else:
                heap.append((lost_lower_bound(n, now, after), False, i, n))
    heapq.heapify(heap)
    best: list[tuple[tuple, int, NodeSnapshot]] = []  # tier-2 nodes found so far, in rank order
    seen: list[tuple[tuple, int, NodeSnapshot]] = []
    while heap:
        bound, exact, i, node = heap[0]
        if len(best) >= want and bound > best[want - 1][0][1]:
            # Every node left has more lost work than the last tier-2 node found: it ranks after.
            return out + [n for _, _, n in best[:want]]
        if not exact:  # an earlier bound: the exact value goes back into the heap
            heapq.heapreplace(heap, (lost_lower_bound(node, now, after, fresh=True), True, i, node))
            continue
        heapq.heappop(heap)
        key = rank(node)
        seen.append((key, i, node))
        if key[0] == 2:
            bisect.insort(best, (key, i, node))
    seen.sort()  # every node was ranked: fewer than `want` in tier 2
    return out + [n for _, _, n in seen[:want]]


def lost_lower_bound(node: NodeSnapshot, now: float, consolidate_after_s: float, fresh: bool = False) -> float:
    """A value <= lost_node_seconds(node, now, consolidate_after_s): the exact one (always
    with `fresh`), or one computed earlier for this object whose window (until the first drop)
    still holds."""
    memo = node.memo
    window = memo.get("lost")
    if window is not None and window[0] <= now < window[1] and window[2] == consolidate_after_s:
        if not fresh or window[0] == now:
            return window[3]
    lost = lost_node_seconds(node, now, consolidate_after_s)
    memo["lost"] = (now, _first_drop(node, now, consolidate_after_s), consolidate_after_s, lost)
    return lost


def _first_drop(node: NodeSnapshot, now: float, consolidate_after_s: float) -> float:
    """Before this time the node's lost work is at least its value at `now` (a little early:
    the checkpoint instants are computed with other roundings than at_risk_s's)."""
    if wall_time_near(node, now, consolidate_after_s):
        return math.inf  # it stays 0 from now on
    drop = math.inf if node.time_limit_at is None else node.time_limit_at - consolidate_after_s
    for run in node.runs:
        drop = min(drop, _next_checkpoint(run, now))
    return drop - (1e-6 + 1e-9 * abs(drop)) if drop != math.inf else drop


def _next_checkpoint(run: RunOnNode, now: float) -> float:
    """The next instant after `now` at which the run's work at risk drops (consolidation_cost.at_risk_s)."""
    interval = run.checkpoint_interval_s
    if run.checkpoint_on_term or interval is None or interval <= 0:
        return math.inf  # nothing at risk, or its whole attempt (or time since its checkpoint) is
    if run.last_checkpoint_at is not None and run.last_checkpoint_at >= run.attempt_started_at:
        base = run.last_checkpoint_at
    else:
        base = run.attempt_started_at + (run.restart_cost_s if run.resumed else 0.0)
    return base + interval * (max(0.0, math.floor((now - base) / interval)) + 1)
