"""Where queued runs go: best fit, so nodes empty out and can be released.

Pure: plain data in, assignments out. The controller and the simulator both call it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NodeView:
    name: str
    cluster: str
    slots_total: int
    slots_used: int
    accepting: bool = True  # up and not draining
    time_left_s: float | None = None  # until the wall-time limit; None when unlimited

    @property
    def free(self) -> int:
        return max(0, self.slots_total - self.slots_used) if self.accepting else 0


def place_runs(queued: dict[str, list[str]], nodes: list[NodeView], min_time_left_s: float = 0.0,
               surplus: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """Assign queued runs (per cluster, in queue order) to free slots.

    Best fit: the fullest node with a free slot first, so partly used nodes fill up and
    empty ones can be released; a node about to hit its wall time is used only when no
    fresher node has room. Surplus nodes (`ClusterPlan.surplus`) come after every other
    node: attrition, so they empty by themselves instead of by moves.
    """
    free: dict[str, int] = {n.name: n.free for n in nodes}
    assignments: list[tuple[str, str]] = []
    for cluster, gids in queued.items():
        candidates = [n for n in nodes if n.cluster == cluster and n.free > 0]
        if not candidates or not gids:
            continue

        def rank(n: NodeView) -> tuple[int, int, int, float, str]:
            near_end = n.time_left_s is not None and n.time_left_s < min_time_left_s
            used = n.slots_total - free[n.name]
            return (1 if near_end else 0, 1 if n.name in surplus else 0, -used, -(n.time_left_s or float("inf")), n.name)

        pending = iter(gids)
        exhausted = False
        while not exhausted:
            open_nodes = [n for n in candidates if free[n.name] > 0]
            if not open_nodes:
                break
            best = min(open_nodes, key=rank)
            while free[best.name] > 0:
                gid = next(pending, None)
                if gid is None:
                    exhausted = True
                    break
                assignments.append((gid, best.name))
                free[best.name] -= 1
    return assignments
