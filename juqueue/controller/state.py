"""The controller's in-memory view of live runs and nodes (rebuilt from the store at start).

Only runs that are not final are held; final runs are looked up in the store when a
dependency asks for them, so 100,000 finished runs cost nothing per tick.
"""

from __future__ import annotations

from typing import Callable

from juqueue.controller.clock import Clock
from juqueue.controller.config import ClusterHealth, ControllerConfig
from juqueue.controller.records import NodeInfo, RunState
from juqueue.controller.run_queue import RunQueue
from juqueue.policy.duration import expected_duration
from juqueue.policy.slot_demand import nodes_for_unplaced
from juqueue.policy.slot_placement import NodeSlots, RunDemand
from juqueue.status import NodeState, RunStatus
from juqueue.store.store import Store, WriteBatch

MESSAGE_GRACE_S = 60.0  # see ControllerState.message_grace
_TAKING = (NodeState.PENDING, NodeState.STARTING, NodeState.UP)  # states of nodes that take runs


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
        self.on_commit: Callable[[WriteBatch], None] | None = None  # the live feed (juqueue/controller/feed.py)
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
        self.heartbeats: set[str] = set()  # nodes whose last_heartbeat the store has not seen yet

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

    def note_heartbeat(self, node: NodeInfo) -> None:
        """A heartbeat moves only `last_heartbeat`: 1,000 nodes make 200 of them a second, so
        they reach the store once per tick (`flush_heartbeats`), all in one statement."""
        self.heartbeats.add(node.name)

    def flush_heartbeats(self) -> None:
        """Put the heartbeats seen since the last tick into the batch (memory has them already:
        liveness reads memory; the store's copy may be a tick old)."""
        for name in self.heartbeats:
            node = self.nodes.get(name)
            if node is not None:
                self.batch.nodes.setdefault(name, {})["last_heartbeat"] = node.last_heartbeat
        self.heartbeats.clear()

    def attempt_columns(self, run: RunState) -> dict:
        """The pending column updates of the run's current attempt (created on first use)."""
        return self.batch.attempts.setdefault((run.gid, run.attempt), {})

    def message_grace(self, node: NodeInfo) -> float:
        """How long a node that is up may take to list an attempt published to it: its worker
        takes the message within seconds; three heartbeats and a minute leave room for a slow start."""
        spec = self.config.clusters.get(node.cluster)
        return max(MESSAGE_GRACE_S, 3 * (spec.heartbeat_interval if spec else self.config.heartbeat_interval_s))

    def warning_at(self, node: NodeInfo) -> float | None:
        """When the node's wall-time warning comes (SLURM's USR1, `signal_lead` before its limit;
        a local node's limit itself); None: no limit."""
        spec = self.config.clusters.get(node.cluster)
        if node.time_limit_at is None or spec is None:
            return None
        return node.time_limit_at - (spec.signal_lead if spec.type == "slurm" else 0)

    def expected_run_s(self, run: RunState) -> float | None:
        """The run's expected duration (its `duration`, else its experiment's median); None: unknown."""
        return expected_duration(run.duration_s, self.durations.get(run.experiment, ()))

    @staticmethod
    def attempt_started(run: RunState, now: float) -> float:
        """When the run's current attempt started (the worker's clock when known)."""
        return run.started_ts if run.started_ts is not None else (run.started_at or now)

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
        batch = self.batch
        if batch:
            self.store.commit(batch)
        self.batch = WriteBatch()
        if self.on_commit is not None:  # committed, and final runs and ended nodes still in memory
            self.on_commit(batch)
        for gid in self.finalized:
            run = self.runs.get(gid)
            if run is not None and run.status.is_final:
                del self.runs[gid]
        self.finalized.clear()
        for name in [n for n, node in self.nodes.items() if not node.state.is_live]:
            del self.nodes[name]
