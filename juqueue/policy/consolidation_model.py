"""The plain data consolidation decides over: what the controller (or the simulator) sees
of each cluster at one instant, and the plan it gets back. No behaviour beyond arithmetic
on a node's own slots, so a snapshot can be built by hand in a test."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from functools import cached_property


class ConsolidationMode(str, Enum):
    """`consolidation` in clusters.yaml."""

    AGGRESSIVE = "aggressive"  # move runs off surplus nodes, release an empty surplus node at once
    IDLE = "idle"  # never interrupt a run; an empty node goes after idle_timeout (idle_nodes_to_stop)


class NodePhase(str, Enum):
    """What consolidation needs of a node's state. Draining and stopping nodes are going away
    anyway: they count neither as capacity nor as surplus, and take no moved run."""

    ACCEPTING = "accepting"  # pending, starting or up: takes runs
    DRAINING = "draining"
    STOPPING = "stopping"


class Refusal(str, Enum):
    """Why a surplus lasts without a move: a stable short string for status and events."""

    NO_ROOM = "no room"
    COOLDOWN = "cooldown"
    NOT_MOVABLE = "movable: false"
    WAITING_FOR_RUNS = "waiting for runs to end"
    LOSES_MORE = "a move would lose more than it saves"
    TOO_SOON = "consolidate_after not reached"


@dataclass(frozen=True)
class RunOnNode:
    """A live run (assigned or running) as consolidation weighs it."""

    gid: str
    attempt_started_at: float
    slots: int = 1
    movable: bool = True
    moved_at: float | None = None  # its last move; None if never moved
    expected_duration_s: float | None = None  # from policy.duration.expected_duration; None: unknown
    # What a stop costs it (consolidation_cost.at_risk_s): its last checkpoint as reported by its
    # worker (None: not reported), else its declared interval (None: no checkpoints known)
    last_checkpoint_at: float | None = None
    checkpoint_interval_s: float | None = None
    restart_cost_s: float = 0.0  # a restarted attempt's time before new progress
    checkpoint_on_term: bool = False  # it saves its state on SIGTERM: a stop loses nothing
    resumed: bool = False  # an earlier attempt was interrupted: this one spends restart_cost_s first
    experiment: str = ""  # with expected_duration_s None: ClusterSnapshot.medians may know its experiment's


@dataclass(frozen=True)
class NodeSnapshot:
    name: str
    slots_total: int
    state: NodePhase = NodePhase.ACCEPTING
    started_at: float | None = None  # when it began billing (worker up); None: pending, bills nothing yet
    time_limit_at: float | None = None  # when its wall-time warning comes (it drains then); None: unlimited
    runs: tuple[RunOnNode, ...] = ()
    reserved_slots: int = 0  # already promised to runs being moved here
    protected: bool = False  # a replacement before its predecessor's warning + grace (policy.replacement)

    @cached_property
    def used_slots(self) -> int:
        return sum(r.slots for r in self.runs) + self.reserved_slots

    @cached_property
    def first_run(self) -> tuple[float, str] | None:
        """(attempt_started_at, gid) of its run that started first; None without runs."""
        return min(((r.attempt_started_at, r.gid) for r in self.runs), default=None)

    @cached_property
    def memo(self) -> dict:
        """Values derived from the node's own fields that planning keeps between calls while a
        caller hands in the same object (consolidation_rank); never part of its equality."""
        return {}

    @cached_property
    def free_slots(self) -> int:
        return max(0, self.slots_total - self.used_slots)

    @property
    def pending(self) -> bool:
        return self.started_at is None

    @cached_property
    def is_empty(self) -> bool:
        """No run and nothing promised: releasing it interrupts nothing."""
        return not self.runs and self.reserved_slots == 0

    def time_left_s(self, now: float) -> float:
        return float("inf") if self.time_limit_at is None else self.time_limit_at - now


@dataclass(frozen=True)
class ClusterSettings:
    num_slots: int
    max_jobs: int
    mode: ConsolidationMode = ConsolidationMode.AGGRESSIVE
    consolidate_after_s: float = 60.0
    move_cooldown_s: float = 300.0
    grace_period_s: float = 30.0


@dataclass(frozen=True)
class ClusterSnapshot:
    name: str
    settings: ClusterSettings
    target: int  # from scaling.target_nodes over live + ready slots
    nodes: tuple[NodeSnapshot, ...] = ()
    surplus_since: float | None = None  # ClusterPlan.surplus_since of the previous plan
    emptying: str | None = None  # a node whose runs are being moved off, until its stop is confirmed
    # The expected duration of a run whose own expected_duration_s is None, per experiment: its
    # experiment's median of completed runs. Here rather than on each run, so that a new median
    # does not make a new snapshot of every node (a caller may equally resolve it per run).
    medians: tuple[tuple[str, float | None], ...] = ()

    @cached_property
    def median_of(self) -> dict[str, float | None]:
        return dict(self.medians)


@dataclass(frozen=True)
class Snapshot:
    clusters: tuple[ClusterSnapshot, ...]


@dataclass(frozen=True)
class Move:
    run: str
    source: str
    to: str  # reserve `slots` there before stopping the run
    slots: int
    lost_s: float  # the work it is expected to lose: progress since its last checkpoint + restart cost


@dataclass(frozen=True)
class ClusterPlan:
    """What to do in one cluster now. `surplus` always says which accepting nodes are above
    the target (placement puts runs there last); `surplus_since` is what the caller keeps
    and passes back in the next snapshot."""

    cluster: str
    target: int
    surplus: tuple[str, ...] = ()
    surplus_since: float | None = None
    release: tuple[str, ...] = ()  # empty surplus nodes to stop now, pending ones (cancel) first
    empty: str | None = None  # the node whose runs move now
    moves: tuple[Move, ...] = ()
    lost_s: float = 0.0  # node-seconds of work the moves throw away
    saved_s: float = 0.0  # node-seconds they save (see consolidation_cost.saved_node_seconds)
    refusal: Refusal | None = None  # set while a surplus node holds runs and none moves
    detail: str = ""


@dataclass(frozen=True)
class Plan:
    clusters: tuple[ClusterPlan, ...]

    def cluster(self, name: str) -> ClusterPlan:
        return next(p for p in self.clusters if p.cluster == name)

    @property
    def surplus(self) -> frozenset[str]:
        """Every surplus node: placed on last (slot_placement: `NodeSlots.surplus`)."""
        return frozenset(name for p in self.clusters for name in p.surplus)
