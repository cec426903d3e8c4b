"""The floor a policy is judged against (`floor_node_hours`): what the sweep would bill with
perfect, free consolidation and no scheduler.

The same runs start in queue order (the workload's order, each at its arrival and once its
dependencies ended) on `max_jobs × num_slots` slots at once (no queue wait), never restart, and
nodes are released the instant their runs could be packed onto fewer: at every instant
ceil(live slots / num_slots) nodes bill, so the floor is ∫ ceil(live(t) / num_slots) dt. It is
above the lower bound (work / num_slots) by the tail of partly filled nodes, which no packing
of those starts removes; a policy can only beat it by starting runs in another order.
"""

from __future__ import annotations

import heapq
import math

from juqueue.simulate.workload import Conditions, Workload


def floor_node_seconds(workload: Workload, conditions: Conditions) -> float:
    """∫ ceil(live slots / num_slots) dt over the list schedule described above."""
    free = [0.0] * (conditions.max_jobs * conditions.num_slots)  # when each slot is next free (a heap)
    ends: dict[str, float] = {}
    changes: list[tuple[float, int]] = []
    for run in workload.runs:
        slots = min(run.slots, len(free))
        taken = [heapq.heappop(free) for _ in range(slots)]
        ready = max([run.arrival_s, *(ends.get(d, 0.0) for d in run.depends_on)])
        start = max(ready, taken[-1])
        end = start + run.duration_s
        for _ in taken:
            heapq.heappush(free, end)
        ends[run.gid] = end
        changes += [(start, run.slots), (end, -run.slots)]
    changes.sort()
    total, live, last = 0.0, 0, 0.0
    for t, delta in changes:
        total += (t - last) * math.ceil(live / conditions.num_slots)
        live, last = live + delta, t
    return total
