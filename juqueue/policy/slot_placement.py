"""Slot-exact placement: which slot indices of which node each queued run gets.

Pure: plain data in, placements out. The controller sends the indices in the task message,
so the store and status know which slots (and so which CPUs and GPUs, juqueue.workers.slots) a run
holds. A run may need k slots; they always come from one node. Per cluster, in queue order:

1. Candidates: nodes of the cluster that take runs now (accepting, not starting) with k
   usable free slots (free indices, minus `reserved` counts, minus slots given in this
   call); a run that needs CUDA devices never goes to a `no_devices` node.
2. Rank: nodes with at least `min_time_left_s` of wall time before those near it, non-surplus
   before surplus (attrition), then best fit by free slots (fewest left stranded), then most
   wall time left, then name.
3. Giving way: a run that fits no node may move ONE run placed earlier in this call, of at
   most its own size, to another node with room, and take its place. So a single-slot run
   never keeps the last free slots a waiting k-slot run needs while another node can take
   it, and no node's usable free slots ever grow during the call.
4. A run that still fits nowhere waits and blocks no later run, with one exception against
   starvation: the first such run of a cluster holds the node nearest to holding it (its
   slots_total >= k; fresh, non-surplus, most usable free slots first), unless a starting
   node of the cluster has room for it. No later run of the call takes the held node's free
   slots, so they pile up as its runs end instead of going to a stream of small runs. One
   hold per cluster; the controller also starts a node for it (slot_demand).
5. Indices: per node, bigger runs first, each takes the smallest contiguous block of free
   indices that holds it (lowest on ties), else the lowest free indices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

__all__ = ["RunDemand", "NodeSlots", "Placement", "Hold", "SlotPlan", "assign_slots", "plan_slots", "pick_slots"]


@dataclass(frozen=True)
class RunDemand:
    """A queued run as placement sees it."""

    run: str
    slots: int = 1
    needs_devices: bool = False  # needs CUDA devices: never on a node flagged no_devices

    def __post_init__(self) -> None:
        if self.slots < 1:
            raise ValueError(f"run {self.run}: slots must be at least 1, got {self.slots}")


@dataclass(frozen=True)
class NodeSlots:
    """A node and which of its slot indices are in use (by live runs, before this call)."""

    name: str
    cluster: str
    slots_total: int
    used: frozenset[int] = frozenset()
    accepting: bool = True  # up and not draining: takes runs now
    starting: bool = False  # pending or starting: takes no run yet, but its slots are coming
    time_left_s: float | None = None  # until its wall-time limit; None: unlimited
    surplus: bool = False  # above the cluster's target (consolidation): placed on last
    no_devices: bool = False  # a run that needs CUDA devices found none here

    @cached_property
    def free_slots(self) -> tuple[int, ...]:
        """Computed once per snapshot (a node is asked many times per placement)."""
        return tuple(i for i in range(self.slots_total) if i not in self.used)


@dataclass(frozen=True)
class Placement:
    run: str
    node: str
    slots: tuple[int, ...]  # exactly the run's k indices, ascending


@dataclass(frozen=True)
class Hold:
    """Free slots of `node` kept for `run` (it fits nowhere yet): no later run took them."""

    cluster: str
    run: str
    node: str


@dataclass(frozen=True)
class SlotPlan:
    placements: tuple[Placement, ...] = ()
    holds: tuple[Hold, ...] = ()  # at most one per cluster; lets status say why a run waits


def assign_slots(queued: dict[str, list[RunDemand]], nodes: list[NodeSlots], min_time_left_s: float = 0.0,
                 reserved: dict[str, int] | None = None) -> list[Placement]:
    """Placements for the queued runs (per cluster, in queue order); see the module rules."""
    return list(plan_slots(queued, nodes, min_time_left_s, reserved).placements)


def plan_slots(queued: dict[str, list[RunDemand]], nodes: list[NodeSlots], min_time_left_s: float = 0.0,
               reserved: dict[str, int] | None = None) -> SlotPlan:
    """`assign_slots` plus the holds it made. `reserved`: slots per node already promised
    (to runs being moved there) whose indices are not chosen yet; they stay free."""
    reserved = reserved or {}
    placements: list[Placement] = []
    holds: list[Hold] = []
    for cluster, runs in queued.items():
        mine = [n for n in nodes if n.cluster == cluster and n.accepting and not n.starting]
        coming = [n for n in nodes if n.cluster == cluster and n.starting]
        where, held = pack(runs, mine, usable_free(mine, reserved), min_time_left_s,
                           coming_room=[(n, usable_free([n], reserved)[n.name]) for n in coming])
        if held is not None:
            holds.append(Hold(cluster, runs[held[0]].run, held[1]))
        placements += _indices(runs, where, {n.name: n for n in mine})
    return SlotPlan(tuple(placements), tuple(holds))


def pick_slots(free: Sequence[int], k: int) -> tuple[int, ...] | None:
    """k of the free indices: the smallest contiguous block that holds k (lowest first among
    equal blocks), so CPU and GPU blocks stay compact and big gaps stay whole; without such a
    block the lowest k. None when fewer than k are free."""
    ordered = sorted(set(free))
    if k < 1 or k > len(ordered):
        return None
    blocks: list[tuple[int, int]] = []  # (length, position in ordered)
    start = 0
    for i in range(1, len(ordered) + 1):
        if i == len(ordered) or ordered[i] != ordered[i - 1] + 1:
            blocks.append((i - start, start))
            start = i
    fitting = [b for b in blocks if b[0] >= k]
    if fitting:
        _, pos = min(fitting)
        return tuple(ordered[pos:pos + k])
    return tuple(ordered[:k])


# ------------------------------------------------------------------ the packing (shared with slot_demand)
def usable_free(nodes: list[NodeSlots], reserved: dict[str, int]) -> dict[str, int]:
    return {n.name: max(0, len(n.free_slots) - reserved.get(n.name, 0)) for n in nodes}


def _can_take(node: NodeSlots, run: RunDemand) -> bool:
    return not (run.needs_devices and node.no_devices)


def _rank(node: NodeSlots, leftover: int, min_left: float) -> tuple[bool, bool, int, float, str]:
    left = float("inf") if node.time_left_s is None else node.time_left_s
    return left < min_left, node.surplus, leftover, -left, node.name


def pack(runs: list[RunDemand], nodes: list[NodeSlots], left: dict[str, int], min_left: float,
         coming_room: list[tuple[NodeSlots, int]] | None) -> tuple[dict[int, str], tuple[int, str] | None]:
    """Node per queue position (rules 1-4; `left` is updated). `coming_room` None: no hold
    (scale-out counts capacity this way). Returns the placements and the hold (position, node)."""
    where: dict[int, str] = {}
    held: tuple[int, str] | None = None
    failed: dict[bool, set[int]] = {False: set(), True: set()}  # sizes k that fit nowhere, per needs_devices
    for i, run in enumerate(runs):
        open_nodes = [n for n in nodes if held is None or n.name != held[1]]
        if not any(left[n.name] for n in open_nodes):
            break  # every later run waits too
        # A run of size k that fit nowhere, not even by giving way, left every node that takes it
        # with fewer than k usable free slots, and each run of size <= k there unable to make k
        # room by moving (usable free slots never grow during the call). So a run of the same
        # size waits too, and a bigger one can only fit by moving a run bigger than that k.
        floor = max((k for k in failed[run.needs_devices] if k <= run.slots), default=0)
        if floor == run.slots:
            continue
        if not floor:
            fits = [n for n in open_nodes if _can_take(n, run) and left[n.name] >= run.slots]
            if fits:
                best = min(fits, key=lambda n: _rank(n, left[n.name] - run.slots, min_left))
                where[i] = best.name
                left[best.name] -= run.slots
                continue
        if _give_way(i, runs, open_nodes, where, left, min_left, floor):
            continue
        failed[run.needs_devices].add(run.slots)
        if not run.needs_devices:
            failed[True].add(run.slots)  # a run that needs devices has fewer nodes to go to
        if held is None and coming_room is not None:
            if not any(_can_take(n, run) and room >= run.slots for n, room in coming_room):
                holdable = [n for n in open_nodes if _can_take(n, run) and n.slots_total >= run.slots]
                if holdable:
                    best = min(holdable, key=lambda n: _rank(n, -left[n.name], min_left)[:3] + (n.name,))
                    held = (i, best.name)
    return where, held


def _give_way(i: int, runs: list[RunDemand], nodes: list[NodeSlots], where: dict[int, str], left: dict[str, int],
              min_left: float, floor: int = 0) -> bool:
    """Rule 3: move one placed run of at most runs[i]'s size off a node where runs[i] then
    fits, onto another node with room. Smallest run moves first, then the best node for
    runs[i], then the run later in the queue. Runs of `floor` slots or fewer cannot make the
    room (pack: a run of that size fit nowhere), so they are not tried."""
    run = runs[i]
    by_name = {n.name: n for n in nodes}
    options = []
    for j, at in where.items():
        other, source = runs[j], by_name.get(at)
        if source is None or not floor < other.slots <= run.slots or not _can_take(source, run):
            continue
        if left[at] + other.slots < run.slots:
            continue
        dests = [m for m in nodes if m.name != at and _can_take(m, other) and left[m.name] >= other.slots]
        if dests:
            dest = min(dests, key=lambda m: _rank(m, left[m.name] - other.slots, min_left))
            fit = _rank(source, left[at] + other.slots - run.slots, min_left)
            options.append(((other.slots, fit, -j), j, dest.name))
    if not options:
        return False
    _, j, dest = min(options)
    source = where[j]
    where[j] = dest
    left[dest] -= runs[j].slots
    left[source] += runs[j].slots - run.slots
    where[i] = source
    return True


def _indices(runs: list[RunDemand], where: dict[int, str], nodes: dict[str, NodeSlots]) -> list[Placement]:
    """Rule 5, then back to queue order."""
    free = {name: list(node.free_slots) for name, node in nodes.items()}
    chosen: dict[int, tuple[int, ...]] = {}
    for i in sorted(where, key=lambda i: (-runs[i].slots, i)):
        slots = pick_slots(free[where[i]], runs[i].slots)
        if slots is None:  # the packing counted usable slots: cannot happen
            raise AssertionError(f"no {runs[i].slots} free slots left on {where[i]} for {runs[i].run}")
        chosen[i] = slots
        free[where[i]] = [s for s in free[where[i]] if s not in slots]
    return [Placement(runs[i].run, where[i], chosen[i]) for i in sorted(where)]
