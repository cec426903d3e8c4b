"""Wall time without a gap: which nodes get a replacement job before their wall-time warning.

Pure. A SLURM node drains at its wall-time warning; the runs it interrupts would then wait in
SLURM's queue for a new job. When a node's warning is at most `lead_s` away and runs on it
will still need slots then (their expected end lies past the warning, or is unknown), a
replacement is submitted now, so the drained runs move onto a node that is already up.

No replacement when the runs it would take fit on the cluster's other nodes (together with
the ready runs already waiting for those), and none once `max_jobs` nodes are live. A
replacement belongs to the node it replaces: it is protected (neither surplus nor released
as idle) until that node's warning + the grace period, and the runs it is for have its
slots reserved.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from juqueue.policy.slot_demand import nodes_for_unplaced
from juqueue.policy.slot_placement import NodeSlots, RunDemand, usable_free

__all__ = ["RunAtWarning", "WarnedNode", "ReplacementSettings", "Replacement", "runs_outliving",
           "replacements_to_start", "protected"]


@dataclass(frozen=True)
class RunAtWarning:
    """A live run on a node, as the replacement decision weighs it."""

    gid: str
    slots: int = 1
    expected_end: float | None = None  # attempt start + expected duration; None: unknown
    estimated: bool = False  # the expected duration is its experiment's median, not its own `duration`


@dataclass(frozen=True)
class WarnedNode:
    """An up node with a known wall-time warning."""

    name: str
    warning_at: float
    runs: tuple[RunAtWarning, ...] = ()
    replaced: bool = False  # a replacement was started for it already


@dataclass(frozen=True)
class ReplacementSettings:
    lead_s: float  # replacement_lead: 0 means never
    num_slots: int
    max_jobs: int
    grace_period_s: float = 30.0


@dataclass(frozen=True)
class Replacement:
    """Start one node for `node`: reserve its slots for `runs`; protect it until `protect_until`."""

    node: str
    runs: tuple[str, ...]
    protect_until: float


def runs_outliving(node: WarnedNode, now: float | None = None) -> tuple[RunAtWarning, ...]:
    """The node's runs that will still need slots at its warning. A run past the median it
    was estimated by (not a `duration` of its own) is unknown, so outliving: taking it as
    about to end left a lone long run drained at the warning, to wait a whole queue wait."""
    return tuple(r for r in node.runs if r.expected_end is None or r.expected_end > node.warning_at
                 or (r.estimated and now is not None and r.expected_end <= now))


def replacements_to_start(warned: Sequence[WarnedNode], others: Sequence[NodeSlots], ready: Iterable[RunDemand],
                          settings: ReplacementSettings, live_nodes: int, now: float,
                          reserved: dict[str, int] | None = None) -> list[Replacement]:
    """The replacements to submit now, earliest warning first.

    `warned`: the cluster's up nodes with a known warning; `others`: its nodes that take runs
    (up, starting or pending; those whose own warning is within the lead are left out here, as
    they go away too); `ready`: its ready runs in queue order (read only as far as needed);
    `live_nodes`: its live nodes (replacements included), against `max_jobs`; `reserved`: slots
    already promised per node."""
    room = settings.max_jobs - live_nodes
    if settings.lead_s <= 0 or room <= 0:
        return []
    due = [n for n in sorted(warned, key=lambda n: (n.warning_at, n.name))
           if not n.replaced and n.warning_at - settings.lead_s <= now < n.warning_at and runs_outliving(n, now)]
    if not due:
        return []
    going = {n.name for n in warned if n.warning_at - settings.lead_s <= now}  # their own warning is near
    capacity = [n for n in others if n.name not in going]
    # Ready runs that alone fill every free slot and every node max_jobs still allows leave no
    # room for a replacement (scale-out starts those nodes for them): read no further.
    limit = sum(usable_free(capacity, reserved or {}).values()) + room * settings.num_slots
    waiting: list[RunDemand] = []
    for run in ready:
        waiting.append(run)
        limit -= run.slots
        if limit < 0:
            return []
    already_short = nodes_for_unplaced(waiting, capacity, settings.num_slots, reserved)
    out: list[Replacement] = []
    for node in due:
        if room <= 0:
            break
        outliving = runs_outliving(node, now)
        waiting += [RunDemand(r.gid, r.slots) for r in outliving]
        short = nodes_for_unplaced(waiting, capacity, settings.num_slots, reserved)
        if short <= already_short:
            continue  # the other nodes take them
        already_short = short
        out.append(Replacement(node.name, tuple(r.gid for r in outliving), node.warning_at + settings.grace_period_s))
        room -= 1
    return out


def protected(protect_until: float | None, now: float) -> bool:
    """A replacement before its predecessor's warning + grace: neither surplus nor idle."""
    return protect_until is not None and now < protect_until
