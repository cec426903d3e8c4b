"""Demand in slots for scaling, and the check that a run's slots fit its cluster's nodes.

Pure. A k-slot run needs k free slots of ONE node, so free slots that only add up (1 + 1
for a 2-slot run) are no room: such a run makes JuQueue start a node. Capacity here is
every accepting or starting node of the cluster (a starting node's slots are coming), filled
by the same packing as placement (slot_placement), without the starvation hold and without
preferring fresh nodes (a node near its wall time still counts).
"""

from __future__ import annotations

from collections.abc import Iterable

from juqueue.policy.slot_placement import NodeSlots, RunDemand, pack, usable_free

__all__ = ["demand_slots", "unplaced_runs", "needs_new_node", "nodes_for_unplaced", "run_slots_error"]


def demand_slots(runs: Iterable[RunDemand]) -> int:
    """Slots the runs need: pass live + ready runs to scaling.target_nodes as demand_slots."""
    return sum(run.slots for run in runs)


def unplaced_runs(ready: list[RunDemand], nodes: list[NodeSlots],
                  reserved: dict[str, int] | None = None) -> list[RunDemand]:
    """The ready runs (one cluster's, in queue order) that find no slots on `nodes` (that
    cluster's nodes) once the runs before them are placed."""
    capacity = [n for n in nodes if n.accepting or n.starting]
    where, _ = pack(ready, capacity, usable_free(capacity, reserved or {}), 0.0, coming_room=None)
    return [run for i, run in enumerate(ready) if i not in where]


def needs_new_node(ready: list[RunDemand], nodes: list[NodeSlots], reserved: dict[str, int] | None = None) -> bool:
    """True when some ready run fits on no live node, even if the free slots add up to it."""
    return bool(unplaced_runs(ready, nodes, reserved))


def nodes_for_unplaced(ready: list[RunDemand], nodes: list[NodeSlots], num_slots: int,
                       reserved: dict[str, int] | None = None) -> int:
    """New nodes of `num_slots` slots the unplaced runs need: best fit decreasing, each run
    whole on one node. Runs bigger than a node are no demand (run_slots_error refuses them
    when definitions load). For scaling.ClusterLoad.unfit_nodes."""
    if num_slots < 1:
        raise ValueError(f"num_slots must be at least 1, got {num_slots}")
    if all(r.slots == 1 and not r.needs_devices for r in ready):
        # One-slot runs fill any free slot: what packing gives, by arithmetic (the common case, cheap).
        free = sum(usable_free([n for n in nodes if n.accepting or n.starting], reserved or {}).values())
        return -(-max(0, len(ready) - free) // num_slots)
    return _nodes_by_packing(ready, nodes, num_slots, reserved)


def _nodes_by_packing(ready: list[RunDemand], nodes: list[NodeSlots], num_slots: int,
                      reserved: dict[str, int] | None) -> int:
    with_room = [0] * (num_slots + 1)  # new nodes by free slots left
    started = 0
    for size in sorted((r.slots for r in unplaced_runs(ready, nodes, reserved) if r.slots <= num_slots), reverse=True):
        room = next((room for room in range(size, num_slots + 1) if with_room[room]), None)
        if room is None:
            started, room = started + 1, num_slots
        else:
            with_room[room] -= 1
        with_room[room - size] += 1
    return started


def run_slots_error(run: str, slots: object, cluster: str, num_slots: int) -> str | None:
    """Why a run's `slots` is wrong for its cluster, naming the run; None when fine. The
    definitions layer raises its own error with this message: a run bigger than a node would
    wait forever."""
    if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
        return f"run {run}: slots must be a whole number of at least 1, got {slots!r}"
    if slots > num_slots:
        return (f"run {run}: slots: {slots} but cluster {cluster} has num_slots: {num_slots} "
                "(a run's slots all come from one node)")
    return None
