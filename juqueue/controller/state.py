"""The controller's in-memory view of live runs and nodes (rebuilt from the store at start).

Only runs that are not final are held; final runs are looked up in the store when a
dependency asks for them, so 100,000 finished runs cost nothing per tick.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property

from juqueue.controller.clock import Clock
from juqueue.controller.config import ClusterHealth, ControllerConfig
from juqueue.controller.run_queue import RunQueue
from juqueue.policy.slot_demand import nodes_for_unplaced
from juqueue.policy.slot_placement import NodeSlots, RunDemand
from juqueue.status import NodeState, RunStatus, StopReason
from juqueue.store.store import Store, WriteBatch
from juqueue.store.tables import NodeRow, RunRow


@dataclass
class RunState:
    gid: str
    experiment: str
    run_id: str
    cluster: str
    status: RunStatus
    attempt: int
    spec_json: str
    depends_on: list[str]
    max_retries: int
    retries_used: int
    defined: bool = True
    node: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    queued_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    # the current attempt
    pid: int | None = None
    pstart: int | None = None
    started: bool = False
    started_ts: float | None = None  # when the current attempt's process started (worker clock)
    stop_reason: StopReason | None = None  # recorded before the stop is sent (two-phase)
    stop_detail: str | None = None  # the words shown with it
    exit_pending: tuple[int, float, str] | None = None  # exit code, ended at, node: waits for the node's next sign of life

    hold_on_interrupt: bool = False  # `hold` asked while it ran: held, not queued, if interrupted
    moved_at: float | None = None  # when consolidation last moved it (its cooldown)
    move_to: str | None = None  # the node holding a slot reserved for its next attempt
    move_slots: int = 0  # how many slots are reserved there

    @cached_property
    def _spec(self) -> dict:
        return json.loads(self.spec_json)

    @property
    def needs_cuda(self) -> bool:
        return bool((self._spec.get("executor") or {}).get("cuda"))

    @property
    def slots(self) -> int:
        """Slots of one node the run needs (its definition's `slots`, default 1)."""
        return max(1, int(self._spec.get("slots") or 1))

    @property
    def movable(self) -> bool:
        return bool(self._spec.get("movable", True))

    @property
    def duration_s(self) -> float | None:
        value = self._spec.get("duration")
        return float(value) if value is not None else None

    @classmethod
    def from_row(cls, row: RunRow) -> "RunState":
        return cls(
            gid=row.global_id, experiment=row.experiment, run_id=row.run_id, cluster=row.cluster,
            status=RunStatus(row.status), attempt=row.attempt, spec_json=row.spec_json,
            depends_on=json.loads(row.depends_on or "[]"), max_retries=row.max_retries,
            retries_used=row.retries_used, defined=row.defined, node=row.node, exit_code=row.exit_code,
            reason=row.reason, queued_at=row.queued_at, started_at=row.started_at, ended_at=row.ended_at,
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

    @classmethod
    def from_row(cls, row: NodeRow) -> "NodeInfo":
        return cls(
            name=row.name, cluster=row.cluster, backend=row.backend, token=row.token, state=NodeState(row.state),
            slots_total=row.slots_total, job_id=row.job_id, pid=row.pid, created_at=row.created_at,
            started_at=row.started_at, last_heartbeat=row.last_heartbeat, time_limit_at=row.time_limit_at,
            reason=row.reason, version=row.version, host=row.host, billed_from=row.billed_from,
            billed_until=row.billed_until, billed_estimated=bool(row.billed_estimated),
        )

    def columns(self) -> dict:
        return {
            "state": self.state.value, "job_id": self.job_id, "host": self.host, "pid": self.pid, "version": self.version,
            "reason": self.reason, "started_at": self.started_at, "last_heartbeat": self.last_heartbeat,
            "ended_at": self.ended_at, "time_limit_at": self.time_limit_at, "billed_from": self.billed_from,
            "billed_until": self.billed_until, "billed_estimated": self.billed_estimated,
        }

    @property
    def accepting(self) -> bool:
        return self.state in (NodeState.STARTING, NodeState.UP)

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


_TAKING = (NodeState.PENDING, NodeState.STARTING, NodeState.UP)


class ControllerState:
    """Everything the controller holds in memory, and the batch of changes not yet committed.

    Owned by the controller thread; the components (lifecycle, ingest, dispatch, fleet,
    recovery) all work on this one object.
    """

    def __init__(self, config: ControllerConfig, store: Store, clock: Clock) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.health: dict[str, ClusterHealth] = {name: ClusterHealth() for name in config.clusters}
        self.dirty_placement = True
        self.stopping = False  # no placement and no new nodes once shutdown began
        self.definition_errors: list[str] = []
        self.forget()

    def forget(self) -> None:
        """Drop what memory holds of runs and nodes (it is rebuilt from the store next)."""
        self.runs: dict[str, RunState] = {}  # every run that is not final
        self.nodes: dict[str, NodeInfo] = {}  # every live node
        self.queue = RunQueue()
        self.final_status: dict[str, RunStatus] = {}  # dependencies that ended, as far as asked
        self.pending_exits: dict[str, set[str]] = {}  # node -> runs whose exit waits for the node's next sign of life
        self.finalized: set[str] = set()
        self.batch = WriteBatch()
        self.reserved: dict[str, int] = {}  # node -> slots promised to runs being moved there
        self.surplus: set[str] = set()  # nodes above their cluster's target: placed on last
        self.moving: set[str] = set()  # runs with a reserved slot (move_to)
        self.durations: dict[str, list[float]] = {}  # experiment -> run times of completed runs

    def reserve(self, run: RunState, node: str) -> None:
        """The run's slots on `node` are promised to its next attempt; no other run gets them."""
        self.release_reservation(run)
        run.move_to, run.move_slots = node, run.slots
        self.reserved[node] = self.reserved.get(node, 0) + run.slots
        self.moving.add(run.gid)

    def release_reservation(self, run: RunState) -> None:
        if run.move_to is not None:
            left = self.reserved.get(run.move_to, 0) - run.move_slots
            if left > 0:
                self.reserved[run.move_to] = left
            else:
                self.reserved.pop(run.move_to, None)
            run.move_to = None
        self.moving.discard(run.gid)

    def note_completed(self, run: RunState) -> None:
        """A completed run's time feeds its experiment's median (expected durations)."""
        if run.status == RunStatus.COMPLETED and run.started_at is not None and run.ended_at is not None:
            times = self.durations.setdefault(run.experiment, [])
            times.append(max(0.0, run.ended_at - run.started_at))
            del times[:-200]

    def now(self) -> float:
        return self.clock.time()

    def mark_run_dirty(self, run: RunState) -> None:
        self.batch.runs[run.gid] = run.columns()

    def mark_node_dirty(self, node: NodeInfo) -> None:
        self.batch.nodes[node.name] = node.columns()

    def attempt_columns(self, run: RunState) -> dict:
        """The pending column updates of the run's current attempt (created on first use)."""
        return self.batch.attempts.setdefault((run.gid, run.attempt), {})

    def has_device_less_node(self, cluster: str) -> bool:
        return any(n.no_devices for n in self.nodes.values() if n.cluster == cluster)

    def all_nodes_device_less(self, cluster: str) -> bool:
        """A node of the cluster showed it has no devices, and no live node is known to have
        them (or none is live: the next one is likely started from the same job script)."""
        health = self.health.get(cluster)
        if health is None or not health.devices_missing:
            return False
        return all(n.no_devices for n in self.nodes.values() if n.cluster == cluster and n.state.is_live)

    def device_starved_runs(self, cluster: str) -> int:
        """Ready runs that need CUDA devices while no live node of the cluster has them."""
        if not self.all_nodes_device_less(cluster):
            return 0
        return sum(1 for g in self.queue.head(cluster, self.queue.ready_count(cluster)) if self.runs[g].needs_cuda)

    def device_starved_slots(self, cluster: str) -> int:
        """Slots of the ready runs that need CUDA devices while no live node of the cluster has them."""
        if not self.all_nodes_device_less(cluster):
            return 0
        return sum(self.runs[g].slots for g in self.queue.head(cluster, self.queue.ready_count(cluster)) if self.runs[g].needs_cuda)

    def ready_demands(self, cluster: str, limit: int | None = None) -> list[RunDemand]:
        """The cluster's ready runs (the first `limit`), as slot placement sees them."""
        gids = self.queue.head(cluster, self.queue.ready_count(cluster) if limit is None else limit)
        return [RunDemand(g, self.runs[g].slots, self.runs[g].needs_cuda) for g in gids]

    def slot_nodes(self, now: float, cluster: str | None = None) -> list[NodeSlots]:
        """Live nodes that take runs now (up) or soon (pending, starting), as slot placement sees them."""
        out = []
        for n in self.nodes.values():
            if (cluster is not None and n.cluster != cluster) or n.state not in _TAKING:
                continue
            out.append(NodeSlots(n.name, n.cluster, n.slots_total, frozenset(n.used_slots()),
                                 accepting=n.state == NodeState.UP, starting=n.state != NodeState.UP,
                                 time_left_s=(n.time_limit_at - now) if n.time_limit_at else None,
                                 surplus=n.name in self.surplus, no_devices=n.no_devices))
        return out

    def unfit_nodes(self, cluster: str, num_slots: int, now: float, up_only: bool = False) -> int:
        """New nodes the cluster's ready runs need because they fit no live node whole (a k-slot
        run needs k free slots of one node). `up_only`: count only nodes that are up (not the
        starting ones). Zero while every ready run needs one slot (free slots then just add up)."""
        if self.queue.ready_slots(cluster) <= self.queue.ready_count(cluster):
            return 0
        nodes = [n for n in self.slot_nodes(now, cluster) if not (up_only and n.starting)]
        ready = [RunDemand(d.run, d.slots) for d in self.ready_demands(cluster)]  # devices: see device_starved_runs
        return nodes_for_unplaced(ready, nodes, num_slots, self.reserved)

    def maybe_idle(self, node: NodeInfo, now: float) -> None:
        if not node.runs and node.idle_since is None:
            node.idle_since = now

    def commit(self) -> None:
        """Write the batch in one transaction; on failure the batch is kept and the error raised
        (the controller then rebuilds memory from the store and reads the unacknowledged events
        again, so nothing is lost)."""
        if self.batch:
            self.store.commit(self.batch)
        self.batch = WriteBatch()
        for gid in self.finalized:
            run = self.runs.get(gid)
            if run is not None and run.status.is_final:
                del self.runs[gid]
        self.finalized.clear()
        for name in [n for n, node in self.nodes.items() if not node.state.is_live]:
            del self.nodes[name]
