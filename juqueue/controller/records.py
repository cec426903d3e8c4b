"""What the controller remembers of one run and one node (rebuilt from the store at start)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

from juqueue.policy.queue_order import QueueKey, queue_key
from juqueue.status import NodeState, RunStatus, StopReason
from juqueue.store.tables import NodeRow, RunRow

# A user's drain is kept in the node's `reason` (so it outlives a restart without a column):
# a draining node whose reason carries this mark is released as soon as it is empty.
USER_DRAIN_MARK = "drained by user"


@dataclass(frozen=True, slots=True)
class RunTraits:
    """What decisions read of a run's definition (slots, CUDA, movable, duration, checkpointing).

    Kept instead of the definition itself: 100,000 live runs of one sweep share one of these
    (`traits_of` interns them), and the spec is read from the store only when a run is placed."""

    slots: int = 1
    needs_cuda: bool = False
    movable: bool = True
    duration_s: float | None = None
    checkpoint_interval: float | None = None
    restart_cost: float | None = None
    checkpoint_on_term: bool | None = None
    priority: int = 0


_TRAITS: dict[RunTraits, RunTraits] = {}
_BY_TAIL: dict[str, RunTraits] = {}  # the spec from its "executor" key on -> its traits (bounded)
_TRAIT_KEYS = ('"slots"', '"movable"', '"duration"', '"checkpoint_interval"', '"restart_cost"', '"checkpoint_on_term"', '"cuda"',
               '"priority"')


def traits_of(spec_json: str | None) -> RunTraits:
    """The traits of a stored definition (its `spec_json`), one shared object per distinct value.

    Runs of one sweep differ in their id and command, which come before `executor` in the stored
    JSON, and agree after it: when nothing before the first `"executor"` names a trait, every
    trait is in that tail, so runs with the same tail share traits without parsing (100,000 runs
    are rebuilt at start)."""
    spec_json = spec_json or "{}"
    cut = spec_json.find('"executor"')
    tail = spec_json[cut:] if cut > 0 and not any(k in spec_json[:cut] for k in _TRAIT_KEYS) else None
    if tail is not None and tail in _BY_TAIL:
        return _BY_TAIL[tail]
    traits = _parse_traits(spec_json)
    if tail is not None:
        if len(_BY_TAIL) >= 4096:
            _BY_TAIL.clear()
        _BY_TAIL[tail] = traits
    return traits


def _parse_traits(spec_json: str) -> RunTraits:
    spec = json.loads(spec_json)
    interval, cost, on_term = spec.get("checkpoint_interval"), spec.get("restart_cost"), spec.get("checkpoint_on_term")
    duration = spec.get("duration")
    traits = RunTraits(slots=max(1, int(spec.get("slots") or 1)), needs_cuda=bool((spec.get("executor") or {}).get("cuda")),
                       movable=bool(spec.get("movable", True)), duration_s=None if duration is None else float(duration),
                       checkpoint_interval=None if interval is None else float(interval),
                       restart_cost=None if cost is None else float(cost),
                       checkpoint_on_term=None if on_term is None else bool(on_term),
                       priority=int(spec.get("priority") or 0))
    return _TRAITS.setdefault(traits, traits)


@dataclass(slots=True)
class RunState:
    """One live run as decisions see it: slots, no per-instance dict, and its definition only
    as shared `RunTraits` (100,000 queued runs must fit in a few tens of MB)."""

    gid: str
    experiment: str
    run_id: str
    cluster: str
    status: RunStatus
    attempt: int
    traits: RunTraits
    depends_on: tuple[str, ...]
    max_retries: int
    retries_used: int
    defined: bool = True
    node: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    queued_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    def_order: int | None = None  # its place in the definition files (queue order)
    # the current attempt
    pid: int | None = None
    pstart: int | None = None
    started: bool = False
    started_ts: float | None = None  # when the current attempt's process started (worker clock)
    checkpoint_at: float | None = None  # when the current attempt last checkpointed, as its worker reported
    stop_reason: StopReason | None = None  # recorded before the stop is sent (two-phase)
    stop_detail: str | None = None  # the words shown with it
    exit_pending: tuple[int, float, str] | None = None  # exit code, ended at, node: waits for the node's next sign of life
    exit_detail: str | None = None  # what the worker said of a non-zero exit (a venv that could not be activated)
    # An assigned attempt its node's heartbeats still do not list once one taken after this time
    # arrives lost its message (dropped by a worker on a broker outage, or died with Redis).
    unlisted_deadline: float | None = None

    hold_on_interrupt: bool = False  # `hold` asked while it ran: held, not queued, if interrupted
    moved_at: float | None = None  # when consolidation last moved it (its cooldown)
    move_to: str | None = None  # the node holding a slot reserved for its next attempt
    move_slots: int = 0  # how many slots are reserved there

    @property
    def needs_cuda(self) -> bool:
        return self.traits.needs_cuda

    @property
    def slots(self) -> int:
        """Slots of one node the run needs (its definition's `slots`, default 1)."""
        return self.traits.slots

    @property
    def movable(self) -> bool:
        return self.traits.movable

    @property
    def duration_s(self) -> float | None:
        return self.traits.duration_s

    @property
    def priority(self) -> int:
        return self.traits.priority

    def queue_key(self) -> QueueKey:
        """Its place among the ready runs of its cluster (policy.queue_order)."""
        return queue_key(self.priority, self.duration_s, self.queued_at, self.def_order, self.experiment, self.run_id)

    def checkpointing(self) -> tuple[float | None, float | None, bool | None]:
        """Its own checkpoint_interval, restart_cost, checkpoint_on_term (None: the cluster's)."""
        t = self.traits
        return t.checkpoint_interval, t.restart_cost, t.checkpoint_on_term

    COLUMNS = ("global_id", "experiment", "run_id", "cluster", "status", "attempt", "spec_json", "depends_on",
               "max_retries", "retries_used", "defined", "node", "exit_code", "reason", "queued_at", "started_at", "ended_at", "def_order")

    @classmethod
    def from_values(cls, values: tuple) -> "RunState":  # type: ignore[type-arg]
        """From the runs columns `COLUMNS`, in that order (memory rebuilt from 100,000 plain tuples)."""
        (gid, experiment, run_id, cluster, status, attempt, spec_json, depends_on, max_retries, retries_used,
         defined, node, exit_code, reason, queued_at, started_at, ended_at, def_order) = values
        return cls(
            gid=gid, experiment=sys.intern(experiment), run_id=run_id, cluster=sys.intern(cluster),
            status=RunStatus(status), attempt=attempt, traits=traits_of(spec_json),
            depends_on=() if depends_on in (None, "", "[]") else tuple(json.loads(depends_on)), max_retries=max_retries,
            retries_used=retries_used, defined=defined, node=node, exit_code=exit_code,
            reason=reason, queued_at=queued_at, started_at=started_at, ended_at=ended_at, def_order=def_order,
        )

    @classmethod
    def from_row(cls, row: RunRow) -> "RunState":
        return cls(
            gid=row.global_id, experiment=sys.intern(row.experiment), run_id=row.run_id, cluster=sys.intern(row.cluster),
            status=RunStatus(row.status), attempt=row.attempt, traits=traits_of(row.spec_json),
            depends_on=() if row.depends_on in (None, "", "[]") else tuple(json.loads(row.depends_on)), max_retries=row.max_retries,
            retries_used=row.retries_used, defined=row.defined, node=row.node, exit_code=row.exit_code,
            reason=row.reason, queued_at=row.queued_at, started_at=row.started_at, ended_at=row.ended_at,
            def_order=row.def_order,
        )

    def columns(self) -> dict:
        return {
            "status": self.status.value, "attempt": self.attempt, "exit_code": self.exit_code, "node": self.node,
            "reason": self.reason, "retries_used": self.retries_used, "queued_at": self.queued_at,
            "started_at": self.started_at, "ended_at": self.ended_at,
        }


@dataclass
class NodeInfo:
    name: str
    cluster: str
    backend: str
    token: str
    state: NodeState
    slots_total: int
    job_id: str | None = None
    pid: int | None = None
    created_at: float = 0.0
    started_at: float | None = None
    last_heartbeat: float | None = None
    time_limit_at: float | None = None
    reason: str | None = None
    version: str | None = None
    host: str | None = None
    ended_at: float | None = None
    runs: set[str] = field(default_factory=set)  # gids with an assigned or running attempt here
    slot_of: dict[str, tuple[int, ...]] = field(default_factory=dict)  # gid -> its slot indices (entries of gids not in `runs` are stale)
    idle_since: float | None = None
    stop_sent_at: float | None = None
    no_devices: bool = False  # a run needing CUDA devices found none here
    up_at: float | None = None  # when its worker first reported (it bills from about then)
    emptying: bool = False  # consolidation is moving its runs away; then it is stopped
    device_probe: bool = False  # started to look for CUDA devices: kept until it showed whether it has them
    billed_from: float | None = None  # see NodeRow: when it began to bill
    billed_until: float | None = None
    billed_estimated: bool = False  # the end is when JuQueue saw the job gone, not the scheduler's record
    replaces: str | None = None  # the node whose wall-time warning this one was started for
    protected_until: float | None = None  # not surplus, not idle before this (that node's warning + grace)

    @classmethod
    def from_row(cls, row: NodeRow) -> "NodeInfo":
        return cls(
            name=row.name, cluster=row.cluster, backend=row.backend, token=row.token, state=NodeState(row.state),
            slots_total=row.slots_total, job_id=row.job_id, pid=row.pid, created_at=row.created_at,
            started_at=row.started_at, last_heartbeat=row.last_heartbeat, time_limit_at=row.time_limit_at,
            reason=row.reason, version=row.version, host=row.host, billed_from=row.billed_from,
            billed_until=row.billed_until, billed_estimated=bool(row.billed_estimated),
            replaces=row.replaces, protected_until=row.protected_until,
        )

    def columns(self) -> dict:
        return {
            "state": self.state.value, "job_id": self.job_id, "host": self.host, "pid": self.pid, "version": self.version,
            "reason": self.reason, "started_at": self.started_at, "last_heartbeat": self.last_heartbeat,
            "ended_at": self.ended_at, "time_limit_at": self.time_limit_at, "billed_from": self.billed_from,
            "billed_until": self.billed_until, "billed_estimated": self.billed_estimated,
            "replaces": self.replaces, "protected_until": self.protected_until,
        }

    @property
    def accepting(self) -> bool:
        return self.state in (NodeState.STARTING, NodeState.UP)

    @property
    def drained_by_user(self) -> bool:
        """A user drained it: it takes nothing new and goes once empty; nothing makes it accept again."""
        return self.state == NodeState.DRAINING and USER_DRAIN_MARK in (self.reason or "")

    def release(self, gid: str) -> None:
        """The run's attempt here is over: its slots are free."""
        self.runs.discard(gid)
        self.slot_of.pop(gid, None)

    def take(self, gid: str, slots: tuple[int, ...]) -> None:
        """The run's attempt holds these slot indices here."""
        self.runs.add(gid)
        self.slot_of[gid] = tuple(slots)

    def used_slots(self) -> set[int]:
        """Slot indices held by the runs here (a run whose indices are unknown holds none)."""
        return {i for gid in self.runs for i in self.slot_of.get(gid, ())}

    @property
    def slots_used(self) -> int:
        """Slots held here: each run counts its indices (1 when they are unknown)."""
        return sum(len(self.slot_of.get(gid, ())) or 1 for gid in self.runs)

    def slot_map(self) -> list[str | None]:
        """Per slot index, the run holding it or None."""
        out: list[str | None] = [None] * self.slots_total
        for gid in sorted(self.runs):
            for i in self.slot_of.get(gid, ()):
                if 0 <= i < self.slots_total:
                    out[i] = gid
        return out

    def as_api(self, surplus: bool, surplus_reason: str | None = None, kept_reason: str | None = None) -> dict:
        """The node as `/api/nodes` and `status --json` show it (juqueue.api.models.NodeModel)."""
        return {"name": self.name, "cluster": self.cluster, "type": self.backend, "state": self.state.value,
                "slots_used": self.slots_used, "slots_total": self.slots_total, "num_slots": self.slots_total,
                "runs": sorted(self.runs), "host": self.host, "drained_by_user": self.drained_by_user,
                "surplus_reason": surplus_reason, "kept_reason": kept_reason,
                "slots": self.slot_map(), "job_id": self.job_id, "reason": self.reason,
                "last_heartbeat": self.last_heartbeat, "started_at": self.started_at, "time_limit_at": self.time_limit_at,
                "no_devices": self.no_devices, "surplus": surplus, "billed_from": self.billed_from,
                "billed_until": self.billed_until, "billed_estimated": self.billed_estimated,
                "replaces": self.replaces, "protected_until": self.protected_until}
