"""Node-hours, defined once (pure): what was billed, what of it was busy, who is charged.

- Billed node-seconds: each node's billed interval (SLURM: the job's start to its end; local:
  the worker process's life); a pending job bills nothing; a live node bills up to `now`.
- Busy slot-seconds: each attempt's start to its end (or `now`), times its slots.
- Efficiency: busy slot-seconds / (billed node-seconds × the node's slots).
- Work lost: for each interrupted attempt, the time from its start to its end.
- An experiment is charged, per node, the node's billed time in proportion to its busy
  slot-seconds there; the billed time of a node that ran nothing goes to its cluster.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable


@dataclass(frozen=True)
class NodeBill:
    name: str
    cluster: str
    slots_total: int
    billed_from: float | None
    billed_until: float | None = None
    estimated: bool = False

    def billed_s(self, now: float) -> float:
        if self.billed_from is None:
            return 0.0
        return max(0.0, (self.billed_until if self.billed_until is not None else now) - self.billed_from)


@dataclass(frozen=True)
class AttemptSpan:
    node: str | None
    experiment: str
    started_at: float
    ended_at: float | None = None
    interrupted: bool = False
    slots: int = 1

    def busy_s(self, now: float) -> float:
        return max(0.0, (self.ended_at if self.ended_at is not None else now) - self.started_at) * self.slots


@dataclass
class Totals:
    node_seconds: float = 0.0
    busy_slot_seconds: float = 0.0
    slot_seconds: float = 0.0  # billed node-seconds × slots: what efficiency divides by
    lost_seconds: float = 0.0
    nodes: int = 0
    estimated: bool = False  # some billed end is JuQueue's observation, not the scheduler's record

    def as_dict(self) -> dict[str, object]:
        return {
            "node_hours": round(self.node_seconds / 3600, 6),
            "busy_slot_hours": round(self.busy_slot_seconds / 3600, 6),
            "efficiency": round(self.busy_slot_seconds / self.slot_seconds, 6) if self.slot_seconds else None,
            "lost_hours": round(self.lost_seconds / 3600, 6),
            "nodes": self.nodes,
            "estimated": self.estimated,
        }


@dataclass
class Usage:
    clusters: dict[str, Totals] = field(default_factory=dict)
    experiments: dict[str, Totals] = field(default_factory=dict)
    unattributed: dict[str, float] = field(default_factory=dict)  # cluster -> node-seconds of nodes that ran nothing

    def as_dict(self) -> dict[str, object]:
        return {
            "clusters": {name: t.as_dict() for name, t in sorted(self.clusters.items())},
            "experiments": {name: t.as_dict() for name, t in sorted(self.experiments.items())},
            "unattributed_node_hours": {c: round(s / 3600, 6) for c, s in sorted(self.unattributed.items())},
        }


@dataclass(frozen=True)
class BusyTotal:
    """The ended attempts of one experiment on one node (node None: attempts that had none),
    summed: the store keeps these as running totals, so accounting never reads every attempt."""

    node: str | None
    experiment: str
    busy_s: float
    lost_s: float = 0.0


def ended_contribution(node: str | None, global_id: str, started_at: float | None, ended_at: float | None,
                       interrupted: bool) -> tuple[tuple[str, str], float, float] | None:
    """What one attempt adds to the running totals once it ended: ((node or "", experiment),
    busy seconds, lost seconds); None while it has not both started and ended. Counted as the
    attempts are read for `compute_usage` (one slot each), so totals and a recount agree."""
    if started_at is None or ended_at is None:
        return None
    busy = AttemptSpan(node, global_id.split("@", 1)[0], started_at, ended_at, interrupted).busy_s(ended_at)
    return (node or "", global_id.split("@", 1)[0]), busy, busy if interrupted else 0.0


def compute_usage(nodes: list[NodeBill], attempts: list[AttemptSpan], now: float,
                  totals: Iterable[BusyTotal] = ()) -> Usage:
    """Usage from the nodes' billing, attempts (live ones bill up to `now`) and the ended
    attempts' running totals (each ended attempt counted once, in `attempts` or in `totals`)."""
    usage = Usage()
    by_node: dict[str, NodeBill] = {n.name: n for n in nodes}
    busy: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))  # node -> experiment -> slot-s
    spans = [(a.node, a.experiment, a.busy_s(now), a.busy_s(now) if a.interrupted else 0.0) for a in attempts]
    spans += [(t.node, t.experiment, t.busy_s, t.lost_s) for t in totals]
    for node_name, experiment, seconds, lost in spans:
        exp = usage.experiments.setdefault(experiment, Totals())
        exp.busy_slot_seconds += seconds
        exp.lost_seconds += lost
        node = by_node.get(node_name or "")
        if node is None:
            continue
        busy[node.name][experiment] += seconds
        cluster = usage.clusters.setdefault(node.cluster, Totals())
        cluster.busy_slot_seconds += seconds
        cluster.lost_seconds += lost
    for node in nodes:
        billed = node.billed_s(now)
        cluster = usage.clusters.setdefault(node.cluster, Totals())
        if node.billed_from is not None:
            cluster.nodes += 1
        cluster.node_seconds += billed
        cluster.slot_seconds += billed * node.slots_total
        cluster.estimated = cluster.estimated or node.estimated
        node_busy = sum(busy[node.name].values())
        if node_busy <= 0:
            if billed:
                usage.unattributed[node.cluster] = usage.unattributed.get(node.cluster, 0.0) + billed
            continue
        for exp_name, seconds in busy[node.name].items():
            share = billed * seconds / node_busy
            exp = usage.experiments[exp_name]
            exp.node_seconds += share
            exp.slot_seconds += share * node.slots_total
            exp.nodes += 1
            exp.estimated = exp.estimated or node.estimated
    return usage


def changed_sample(last: tuple[int, int] | None, nodes: int, slots_busy: int) -> bool:
    """The series keeps changes only: a day at a 2 s tick with nothing changing costs nothing."""
    return last != (nodes, slots_busy)


def downsample(points: list[tuple[float, int, int]], max_points: int) -> list[tuple[float, int, int]]:
    """At most `max_points` of a series, evenly spread, always keeping the first and the last."""
    if max_points < 2 or len(points) <= max_points:
        return points
    step = (len(points) - 1) / (max_points - 1)
    return [points[round(i * step)] for i in range(max_points)]
