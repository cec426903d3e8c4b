"""What the simulation holds while it runs: nodes, runs, the ready queue; the policies it can
run and the figures it returns. Plain mutable records; the decisions are in
`controller_step`, `dispatch` and `original`."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum

from juqueue.policy.consolidation_model import ConsolidationMode, NodeSnapshot, RunOnNode
from juqueue.policy.duration import expected_duration
from juqueue.policy.scaling import ScalingPolicy
from juqueue.simulate.workload import Conditions, NodeLatency, SimRun


@dataclass(frozen=True)
class PolicyVariant:
    """`idle`, `original`, `aggressive` (the cluster's scaling policy) or `aggressive+<policy>`."""

    name: str
    mode: ConsolidationMode | None  # None: the original's rule (juqueue.simulate.original)
    scaling: ScalingPolicy


def policy_variants(conditions: Conditions) -> list[PolicyVariant]:
    """Every policy the simulator compares: `idle` and `aggressive` with the cluster's own
    scaling policy, `original`, then `aggressive` with each other scaling policy."""
    own = conditions.scaling_policy
    out = [PolicyVariant("idle", ConsolidationMode.IDLE, own),
           PolicyVariant("original", None, ScalingPolicy.MAXIMIZE_RUNNING),
           PolicyVariant("aggressive", ConsolidationMode.AGGRESSIVE, own)]
    out += [PolicyVariant(f"aggressive+{p.value}", ConsolidationMode.AGGRESSIVE, p) for p in ScalingPolicy if p is not own]
    return out


@dataclass
class PolicyResult:
    """One policy's figures (seconds; the report turns them into hours)."""

    name: str
    node_seconds: float = 0.0  # billed: from the end of each node's queue wait to its end
    busy_slot_seconds: float = 0.0  # every attempt's time x its slots (lost work and restart costs included)
    work_seconds: float = 0.0  # the runs' own durations: what a perfect packing would need
    makespan_s: float = 0.0  # start -> last run completed
    moves: int = 0  # runs interrupted by consolidation (a move, or the original's kill)
    nodes_emptied: int = 0  # nodes whose runs were moved off (or killed, for the original)
    wall_time_interruptions: int = 0
    lost_seconds: float = 0.0  # slot-seconds thrown away by interruptions (since each attempt's last checkpoint)
    max_nodes: int = 0  # nodes billing at once
    node_starts: int = 0  # submitted nodes (some may be cancelled before they start)
    evaluations: int = 0  # consolidation plans built (plan_consolidation calls)
    replacements: int = 0  # nodes started ahead of a node's wall-time warning (policy.replacement)
    wall_time_gaps: int = 0  # wall-time-interrupted attempts whose run started again
    wall_time_gap_total_s: float = 0.0  # their time from the interruption to the next attempt's start
    wall_time_gap_max_s: float = 0.0
    series: list[tuple[float, int, int]] = field(default_factory=list)  # (t, nodes billing, slots busy), on change

    @property
    def wall_time_gap_mean_s(self) -> float | None:
        """How long a run drained at a wall-time warning waited for its next attempt; None: none was."""
        return self.wall_time_gap_total_s / self.wall_time_gaps if self.wall_time_gaps else None

    def note_wall_time_gap(self, gap_s: float) -> None:
        self.wall_time_gaps += 1
        self.wall_time_gap_total_s += gap_s
        self.wall_time_gap_max_s = max(self.wall_time_gap_max_s, gap_s)


class NodeState(IntEnum):
    PENDING = 0  # waiting in the scheduler's queue: bills nothing
    BOOTING = 1  # bills, takes no run yet
    UP = 2
    GONE = 3


class SimNode:
    __slots__ = ("name", "state", "submitted_at", "latency", "bill_from", "up_at", "limit_at", "warning_at", "runs",
                 "used", "reserved", "idle_since", "version", "snap", "snap_version", "replaces",
                 "protected_until")

    def __init__(self, name: str, now: float, latency: NodeLatency) -> None:
        self.name = name
        self.state = NodeState.PENDING
        self.submitted_at = now
        self.latency = latency
        self.bill_from: float | None = None
        self.up_at: float | None = None
        self.limit_at: float | None = None  # its wall-time limit
        self.warning_at: float | None = None  # when it drains (limit - signal_lead)
        self.runs: dict[str, RunState] = {}
        self.used: set[int] = set()  # slot indices of its runs
        self.reserved = 0  # slots promised to runs being moved here
        self.idle_since: float | None = None
        self.version = 0  # bumped on every change the consolidation snapshot sees
        self.snap: NodeSnapshot | None = None  # its last NodeSnapshot, reused while unchanged
        self.snap_version = -1
        self.replaces: str | None = None  # the node whose wall-time warning it was started for
        self.protected_until: float | None = None  # neither surplus nor idle before (policy.replacement.protected)


class RunState:
    __slots__ = ("spec", "gid", "slots", "slot_indices", "queued", "queue_token", "node", "attempt", "started_at",
                 "overhead", "saved",
                 "restarted", "moved_at", "move_to", "unmet", "dependents", "arrived", "own_expected", "ron",
                 "ron_attempt", "wall_interrupted_at")

    def __init__(self, spec: SimRun) -> None:
        self.spec = spec
        self.gid = spec.gid
        self.slots = spec.slots
        self.slot_indices: tuple[int, ...] = ()
        self.queued = False
        self.queue_token = 0  # which entry of the ready queue is its live one
        self.node: SimNode | None = None
        self.attempt = 0
        self.started_at = 0.0  # of the current attempt
        self.overhead = 0.0  # restart cost of the current attempt
        self.saved = 0.0  # checkpointed progress
        self.restarted = False
        self.moved_at: float | None = None
        self.move_to: SimNode | None = None  # the node holding a slot reserved for its next attempt
        self.unmet = 0  # dependencies not yet completed
        self.dependents: list[RunState] = []
        self.arrived = False
        self.own_expected = None if spec.expected_s is None else expected_duration(spec.expected_s, ())
        self.ron: RunOnNode | None = None  # its last RunOnNode, reused while unchanged
        self.ron_attempt = -1
        self.wall_interrupted_at: float | None = None  # its last attempt was drained at a wall-time warning then


class ReadyQueue:
    """Ready runs in queue order (a requeued run goes to the end), like the controller's
    RunQueue, with their slots and how many need more than one. Entries of runs that left the
    queue are skipped lazily, so taking runs off the front costs O(taken)."""

    def __init__(self) -> None:
        self._entries: deque[tuple[RunState, int]] = deque()
        self._len = 0
        self.slots = 0  # slots of the ready runs
        self.multi = 0  # ready runs that need more than one slot
        self.hinted = 0  # ready runs with an expected duration of their own (`duration`)

    def __len__(self) -> int:
        return self._len

    def add(self, run: RunState) -> None:
        if run.queued:
            self.remove(run)
        run.queued = True
        run.queue_token += 1
        self._entries.append((run, run.queue_token))
        self._len += 1
        self.slots += run.slots
        self.multi += run.slots > 1
        self.hinted += run.own_expected is not None

    def remove(self, run: RunState) -> None:
        if run.queued:
            run.queued = False
            self._len -= 1
            self.slots -= run.slots
            self.multi -= run.slots > 1
            self.hinted -= run.own_expected is not None

    def __iter__(self) -> Iterator[RunState]:
        return (entry[0] for entry in self._entries if _live(entry))

    def head(self, n: int) -> list[RunState]:
        """The first `n` ready runs (not removed)."""
        entries = self._entries
        while entries and not _live(entries[0]):
            entries.popleft()
        out: list[RunState] = []
        if n <= 0:
            return out
        for entry in entries:
            if _live(entry):
                out.append(entry[0])
                if len(out) >= n:
                    break
        return out


def _live(entry: tuple[RunState, int]) -> bool:
    run, token = entry
    return run.queued and run.queue_token == token
