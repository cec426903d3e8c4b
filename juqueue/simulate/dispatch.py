"""Placement and scale-out of the controller's batch, over the simulated cluster: Dispatch.place
(`slot_placement.plan_slots`) and Fleet.scale_out (`scaling.nodes_to_start`), imported. Both
policies run them: JuQueue's step (`controller_step`) and the original's (`original`)."""

from __future__ import annotations

from collections.abc import Callable

from juqueue.policy.queue_order import ordered_head, queue_key
from juqueue.policy.scaling import ClusterLoad, nodes_to_start
from juqueue.policy.slot_demand import nodes_for_unplaced
from juqueue.policy.slot_placement import NodeSlots, RunDemand, pick_slots, plan_slots
from juqueue.simulate.cluster import SimCluster
from juqueue.simulate.state import NodeState, ReadyQueue, RunState, SimNode

PLACEMENT_LOOKAHEAD = 256  # controller.dispatch's: queued runs looked at beyond the free slots (k-slot runs)


def ready_head(ready: ReadyQueue, n: int) -> list[RunState]:
    """The first `n` ready runs in JuQueue's queue order: the longest own `duration` first (LPT:
    the long tail starts early, the last nodes empty together), then queue order. O(ready runs)
    while some ready run has a duration, else the queue's head."""
    if not ready.hinted:
        return ready.head(n)
    return ordered_head(ready, n, lambda r: queue_key(0, r.own_expected))


class Dispatch:
    """Places ready runs and starts nodes for the rest; `start_node` is the simulation's (which a
    test may watch), not the cluster's own."""

    def __init__(self, cluster: SimCluster, start_node: Callable[[float], SimNode], check_fast_path: bool = False,
                 queue_order: bool = True) -> None:
        self.cluster = cluster
        self.start_node = start_node
        self.check_fast_path = check_fast_path
        # JuQueue's queue order (policy.queue_order) matters only while ready runs have a
        # `duration` of their own (the simulated runs have no priority); the original's queue is
        # first come, first served.
        self.queue_order = queue_order
        self.min_time_left_s = cluster.c.grace_period_s + 60.0  # Dispatch.place's

    def place(self, t: float) -> None:
        """Dispatch.place: moved runs onto their reserved slots, then plan_slots over the queue's head.

        While every run it looks at needs one slot, only up nodes with a usable free slot are
        passed and only as many runs as there are free slots: full and starting nodes matter to
        plan_slots only for a run that fits nowhere (giving way, holds), and a one-slot run fits
        wherever a slot is free; the rest of the head would find every slot taken."""
        cluster = self.cluster
        for run in list(cluster.moving.values()):
            if not run.queued:
                continue  # its attempt is not over yet
            dest = run.move_to
            cluster.release_reservation(run)
            if dest is not None and dest.state is NodeState.UP:
                slots = pick_slots([i for i in range(cluster.c.num_slots) if i not in dest.used], run.slots)
                if slots is not None:
                    cluster.start(run, dest, slots, t)
        if not len(cluster.ready) or not cluster.open:
            return
        num_slots, name = cluster.c.num_slots, cluster.c.name
        # The controller counts every up node's unused slots; a node missing from `open` has none
        # that is not reserved, and a reserved slot takes no run: the same runs get placed.
        free = sum(num_slots - len(n.used) for n in cluster.open.values())
        if cluster.ready.multi:
            head = self._ready_head(free + PLACEMENT_LOOKAHEAD)
            multi = any(r.slots > 1 for r in head)
        else:
            head, multi = self._ready_head(free), False
        if not multi and len(cluster.open) == 1 and not self.check_fast_path:
            self._fill_one(head, t)
            return
        demands = [RunDemand(r.gid, r.slots) for r in head if r.gid not in cluster.moving]
        if not demands:
            return
        surplus = cluster.surplus
        nodes = cluster.slot_nodes(t) if multi else [
            NodeSlots(n.name, name, num_slots, frozenset(n.used), time_left_s=None if n.limit_at is None else n.limit_at - t,
                      surplus=n.name in surplus) for n in cluster.open.values()]
        reserved = cluster.reserved_slots()
        for p in plan_slots({name: demands}, nodes, self.min_time_left_s, reserved).placements:
            cluster.start(cluster.runs[p.run], cluster.nodes[p.node], p.slots, t)

    def _ready_head(self, n: int) -> list[RunState]:
        return ready_head(self.cluster.ready, n) if self.queue_order else self.cluster.ready.head(n)

    def _fill_one(self, head: list[RunState], t: float) -> None:
        """plan_slots' answer when one up node has free slots and every run needs one: the
        runs in order while its usable free slots last, each on the slot pick_slots chooses
        (rules 1 and 5; no rank, giving way or hold can matter with one node). Most batches
        (a run ended, the next takes its slot) are this; `check_fast_path` runs plan_slots."""
        cluster = self.cluster
        node = next(iter(cluster.open.values()))
        left = cluster.c.num_slots - len(node.used) - node.reserved
        free = [i for i in range(cluster.c.num_slots) if i not in node.used]
        for run in head:
            if left <= 0:
                break
            if run.gid in cluster.moving:
                continue
            slots = pick_slots(free, 1)
            assert slots is not None
            free.remove(slots[0])
            left -= 1
            cluster.start(run, node, slots, t)

    def scale_out(self, t: float, target: int) -> None:
        """Fleet.scale_out: nodes_to_start over the cluster's load, up to the target."""
        cluster = self.cluster
        c = cluster.c
        if not len(cluster.ready):
            return  # nodes_to_start starts nothing without ready runs (no replacements are asked for)
        starting = cluster.counts[NodeState.PENDING] + cluster.counts[NodeState.BOOTING]
        surplus_free = sum(max(0, c.num_slots - len(n.used) - n.reserved) for name in cluster.surplus
                           if (n := cluster.nodes.get(name)) is not None and n.state is NodeState.UP)
        unfit = 0
        if cluster.ready.slots > len(cluster.ready):  # ControllerState.unfit_nodes: k-slot runs that fit no node whole
            unfit = nodes_for_unplaced([RunDemand(r.gid, r.slots) for r in cluster.ready], cluster.slot_nodes(t),
                                       c.num_slots, cluster.reserved_slots())
        load = ClusterLoad(ready_queued=cluster.ready.slots, num_slots=c.num_slots, max_jobs=c.max_jobs,
                           free_slots_accepting=starting * c.num_slots, live_nodes=len(cluster.nodes),
                           accepting_nodes=cluster.accepting(), surplus_free_slots=surplus_free, unfit_nodes=unfit)
        for _ in range(nodes_to_start(load, target=target)):
            self.start_node(t)
