"""The consolidation snapshot the simulator hands to plan_consolidation: Consolidator.snapshot's
nodes, built from the simulation's state. At 1,000 nodes building it would cost more than the
plan itself, so a NodeSnapshot or RunOnNode is rebuilt only when its node, its attempt or its
protection (a replacement before its predecessor's warning + grace, policy.replacement.protected)
changed: an unchanged node is handed in as the same object, which also lets the plan keep what it
derived from it (NodeSnapshot.memo). The experiments' medians of completed runs, which move with
every completion, go in the cluster snapshot (`ClusterSnapshot.medians`), not on each run. Both
are built without their dataclass __init__ (see `_fast_constructors`). What a stop costs a run is
told as the controller tells it today: the cluster's checkpoint interval, restart cost and
checkpoint_on_term, no reported checkpoint (`last_checkpoint_at` None)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from juqueue.policy.consolidation_model import NodePhase, NodeSnapshot, RunOnNode
from juqueue.policy.replacement import protected
from juqueue.simulate.state import SimNode
from juqueue.simulate.workload import Conditions


def _fast_constructors() -> tuple:
    """RunOnNode and NodeSnapshot built without their dataclass __init__ (a frozen dataclass sets
    each field through object.__setattr__, which is most of a snapshot's cost at 1,000 nodes):
    the same objects (equal, same hash), made ~5x faster. Used only while the classes have exactly
    these fields, no __slots__ and no __post_init__; otherwise the classes themselves."""
    ron_fields = ("gid", "attempt_started_at", "slots", "movable", "moved_at", "expected_duration_s",
                  "last_checkpoint_at", "checkpoint_interval_s", "restart_cost_s", "checkpoint_on_term", "resumed",
                  "experiment")
    node_fields = ("name", "slots_total", "state", "started_at", "time_limit_at", "runs", "reserved_slots", "protected")
    plain = all(tuple(f.name for f in dataclasses.fields(cls)) == names and "__slots__" not in vars(cls)
                and not hasattr(cls, "__post_init__") for cls, names in ((RunOnNode, ron_fields), (NodeSnapshot, node_fields)))
    if not plain:
        return RunOnNode, NodeSnapshot
    new = object.__new__

    def run_on_node(gid, started, slots, movable, moved_at, expected, last_checkpoint_at, interval, restart_cost,  # type: ignore[no-untyped-def]
                    on_term, resumed, experiment):
        obj = new(RunOnNode)
        d = obj.__dict__
        d["gid"], d["attempt_started_at"], d["slots"], d["movable"] = gid, started, slots, movable
        d["moved_at"], d["expected_duration_s"] = moved_at, expected
        d["last_checkpoint_at"], d["checkpoint_interval_s"] = last_checkpoint_at, interval
        d["restart_cost_s"], d["checkpoint_on_term"], d["resumed"] = restart_cost, on_term, resumed
        d["experiment"] = experiment
        return obj

    def node_snapshot(name, slots_total, state, started_at, time_limit_at, runs, reserved, protected):  # type: ignore[no-untyped-def]
        obj = new(NodeSnapshot)
        d = obj.__dict__
        d["name"], d["slots_total"], d["state"], d["started_at"] = name, slots_total, state, started_at
        d["time_limit_at"], d["runs"], d["reserved_slots"], d["protected"] = time_limit_at, runs, reserved, protected
        return obj

    return run_on_node, node_snapshot


make_run_on_node, make_node_snapshot = _fast_constructors()


class SnapshotBuilder:
    def __init__(self, conditions: Conditions) -> None:
        self.c = conditions
        self.medians: tuple[tuple[str, float | None], ...] = ()

    def note_medians(self, medians: dict[str, float | None]) -> None:
        """Each experiment's expected duration for runs without their own (duration.expected_duration):
        the cluster snapshot's `medians`, so that a new median rebuilds no node's snapshot."""
        self.medians = tuple(sorted(medians.items()))

    def nodes(self, nodes: Iterable[SimNode], now: float) -> tuple[NodeSnapshot, ...]:
        c = self.c
        out = []
        for node in nodes:
            snap = node.snap
            guarded = node.protected_until is not None and protected(node.protected_until, now)
            if snap is None or node.snap_version != node.version:
                rons = []
                for gid in sorted(node.runs):  # the controller's order
                    run = node.runs[gid]
                    ron = run.ron
                    if ron is None or run.ron_attempt != run.attempt:
                        ron = run.ron = make_run_on_node(gid, run.started_at, run.slots, run.spec.movable, run.moved_at,
                                                         run.own_expected, None, c.checkpoint_interval_s,
                                                         c.restart_cost_s, c.checkpoint_on_term, run.restarted,
                                                         run.spec.experiment)
                        run.ron_attempt = run.attempt
                    rons.append(ron)
                snap = node.snap = self._node_snapshot(node, tuple(rons), guarded)
                node.snap_version = node.version
            elif snap.protected != guarded:
                snap = node.snap = self._node_snapshot(node, snap.runs, guarded)
            out.append(snap)
        return tuple(out)

    def _node_snapshot(self, node: SimNode, runs: tuple[RunOnNode, ...], guarded: bool) -> NodeSnapshot:
        warning = node.warning_at
        if warning is None and self.c.wall_time_s is not None:  # pending: its limit as known at submission
            warning = node.submitted_at + self.c.wall_time_s - self.c.signal_lead_s
        return make_node_snapshot(node.name, self.c.num_slots, NodePhase.ACCEPTING, node.up_at, warning, runs, node.reserved,
                                  guarded)
