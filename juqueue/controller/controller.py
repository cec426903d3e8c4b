"""The controller: one thread that applies run events, places runs, and keeps nodes minimal.

Events are read from the Redis stream in batches and committed to the store in one
transaction before they are acknowledged. Placement follows every batch at once (a slot
freed, a run queued, a node up), and the reconcile tick (triggered by Celery beat) is the
safety net: liveness, idle nodes, Redis resets. Ticks and event handling share this one
thread, so they never run at the same time.
"""

from __future__ import annotations

import json
import logging
import queue
import secrets
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import redis
from celery import Celery

from juqueue.backends.base import BackendError, NodeBackend
from juqueue.broker.keys import Keys
from juqueue.broker.leases import Leases
from juqueue.controller.publisher import Assignment, Publisher
from juqueue.controller.run_queue import RunQueue
from juqueue.controller.state import NodeInfo, RunState
from juqueue.definitions.models import ClusterSpec
from juqueue.events import EXITED, HEARTBEAT, NODE_FAILED, REJECTED, STARTED, Event
from juqueue.paths import WorkDir, read_json, write_json_atomic
from juqueue.policy.outcome import attempt_outcome, dependency_readiness
from juqueue.policy.placement import NodeView, place_runs
from juqueue.policy.scaling import ClusterLoad, idle_nodes_to_stop, nodes_to_start
from juqueue.status import EndReason, NodeState, RunStatus
from juqueue.store.store import Store, WriteBatch
from juqueue.version import __version__
from juqueue.workers.process import kill_group

log = logging.getLogger(__name__)


@dataclass
class ControllerConfig:
    work: WorkDir
    clusters: dict[str, ClusterSpec]
    tick_interval_s: float = 2.0
    lease_ttl_s: float = 120.0
    controller_silence_s: float = 600.0
    coalesce_s: float = 0.02
    start_timeout_s: float = 120.0  # a started node that never heartbeats is given up
    max_start_failures: int = 3  # then submission to that cluster pauses with the reason
    read_count: int = 5000
    stop_escalate_s: float = 60.0
    task_events: bool = False  # workers send Celery task events (Flower's task view)


@dataclass
class ClusterHealth:
    start_failures: int = 0
    paused_reason: str | None = None
    paused_until: float = 0.0


@dataclass
class _Command:
    fn: Callable[[], object]
    future: Future = field(default_factory=Future)


class Controller:
    def __init__(self, config: ControllerConfig, store: Store, client: redis.Redis, app: Celery, backends: dict[str, NodeBackend], namespace: str) -> None:
        self.config = config
        self.work = config.work
        self.store = store
        self.redis = client
        self.keys = Keys(namespace)
        self.namespace = namespace
        self.leases = Leases(client, self.keys)
        self.publisher = Publisher(config.work, self.keys, client, app)
        self.backends = backends
        self.runs: dict[str, RunState] = {}  # every run that is not final
        self.nodes: dict[str, NodeInfo] = {}  # every live node
        self.queue = RunQueue()
        self.final_status: dict[str, RunStatus] = {}  # dependencies that ended, as far as asked
        self.pending_exits: dict[str, set[str]] = {}  # node -> runs whose exit waits for the node's next sign of life
        self._finalized: set[str] = set()
        self.health: dict[str, ClusterHealth] = {name: ClusterHealth() for name in config.clusters}
        self.batch = WriteBatch()
        self._commands: queue.Queue[_Command] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._generation = ""
        self._last_tick = 0.0
        self._node_seq = 0
        self._dirty_placement = True
        self._stopping = False  # no placement and no new nodes once shutdown began
        self.definition_errors: list[str] = []

    # ================================================================ public (any thread)
    def start(self) -> None:
        self._recover()
        self._thread = threading.Thread(target=self._loop, name="juqueue-controller", daemon=True)
        self._thread.start()

    def call(self, fn: Callable[[], object], timeout_s: float = 120.0) -> object:
        """Run `fn` on the controller thread (between batches) and return its result."""
        cmd = _Command(fn)
        self._commands.put(cmd)
        self._wake()
        return cmd.future.result(timeout_s)

    def shutdown(self, cancel_jobs: bool = False, timeout_s: float = 60.0) -> None:
        if self._thread is None:
            return
        try:
            self.call(lambda: self._shutdown_nodes(cancel_jobs), timeout_s)
        finally:
            self._stop.set()
            self._wake()
            self._thread.join(timeout_s)

    def _wake(self) -> None:
        try:
            self.redis.xadd(self.keys.events, Event(type="wake", ts=time.time()).encode())
        except redis.RedisError:
            pass

    # ================================================================ recovery
    def _ensure_group(self) -> None:
        try:
            self.redis.xgroup_create(self.keys.events, self.keys.events_group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _recover(self) -> None:
        """Resume exactly: rebuild memory from the store, settle every attempt whose node is gone."""
        self._ensure_group()
        now = time.time()
        for row in self.store.live_nodes():
            self.nodes[row.name] = NodeInfo.from_row(row)
        for row in self.store.active_runs():
            run = RunState.from_row(row)
            self.runs[run.gid] = run
        live_attempts = self.store.latest_attempts((r.gid, r.attempt) for r in self.runs.values() if r.status.is_live)
        for run in self.runs.values():
            if not run.status.is_live:
                continue
            att = live_attempts.get((run.gid, run.attempt))
            if att is not None:
                run.pid, run.pstart, run.started, run.started_ts = att.pid, att.pgid_start, att.started_at is not None, att.started_at
                run.stop_requested = att.stop_requested
            if run.node in self.nodes:
                self.nodes[run.node].runs.add(run.gid)
        # Local nodes do not survive their server: stop them and settle their runs.
        for node in list(self.nodes.values()):
            backend = self.backends.get(node.backend)
            if node.backend == "local" or backend is None:
                if backend is not None:
                    backend.stop_node(self.config.clusters.get(node.cluster) or _placeholder_cluster(node), node.name, node.job_id, node.pid)
                self._node_gone(node, "server restarted" if node.backend == "local" else "backend unknown", now)
        self._prefetch_statuses(d for r in self.runs.values() for d in r.depends_on)
        for run in list(self.runs.values()):
            if run.status == RunStatus.QUEUED:
                self._enqueue(run)
        # SLURM nodes: the backend's liveness settles them on the first tick.
        for run in list(self.runs.values()):
            if run.status.is_live:
                self._settle_from_exit_file(run, now)
        self._reset_redis_view(now)
        self._commit()

    def _settle_from_exit_file(self, run: RunState, now: float) -> bool:
        data = read_json(self.work.exit_file(run.experiment, run.run_id, run.attempt))
        if not data or data.get("attempt") not in (None, run.attempt):
            return False
        interrupted = bool(data.get("interrupted")) or bool(run.stop_requested)
        self._end_attempt(run, int(data["exit_code"]), float(data.get("ended_at") or now), interrupted, "exit file", data.get("node"))
        return True

    def _reset_redis_view(self, now: float) -> None:
        """Make Redis agree with the store: fencing keys for live attempts, a new generation."""
        self._ensure_group()
        pipe = self.redis.pipeline(transaction=False)
        for run in self.runs.values():
            if run.status.is_live:
                pipe.set(self.keys.current_attempt(run.gid), run.attempt)
        self._generation = f"{secrets.token_hex(6)}:{int(now)}"
        pipe.set(self.keys.generation, self._generation)
        pipe.set(self.keys.controller_alive, str(now), ex=int(self.config.controller_silence_s))
        pipe.execute()

    def _check_redis_generation(self, now: float) -> None:
        """Redis flushed, restarted empty or back from an old AOF: rebuild from the store."""
        new = f"{self._generation.split(':')[0]}:{int(now)}"
        seen = self.redis.set(self.keys.generation, new, get=True)
        if seen == self._generation:
            self._generation = new
            self.redis.set(self.keys.controller_alive, str(now), ex=int(self.config.controller_silence_s))
            return
        log.warning("Redis lost its state (generation %r, expected %r): reconciling from the store", seen, self._generation)
        for run in list(self.runs.values()):
            if run.status == RunStatus.ASSIGNED:
                # The message died with Redis; make sure no copy can still start, then requeue.
                self.redis.set(self.keys.current_attempt(run.gid), "fenced")
                self._end_attempt(run, 0, now, True, "broker reset", run.node)
            elif run.status == RunStatus.RUNNING:
                self._settle_from_exit_file(run, now)
        self._reset_redis_view(now)
        self._dirty_placement = True

    # ================================================================ the loop
    def _loop(self) -> None:
        pending_first = True
        while not self._stop.is_set():
            try:
                self._iterate(pending_first)
                pending_first = False
            except redis.ResponseError as exc:
                if "NOGROUP" in str(exc):
                    log.warning("event stream is gone (Redis reset?)")
                    self._safe(lambda: self._check_redis_generation(time.time()))
                else:
                    log.exception("controller iteration failed")
                    time.sleep(1)
            except redis.RedisError as exc:
                log.warning("broker unreachable: %s", exc)
                time.sleep(1)
            except Exception:  # keep the controller alive; the store holds the truth
                log.exception("controller iteration failed")
                self.batch = WriteBatch()
                time.sleep(1)

    def _safe(self, fn: Callable[[], None]) -> None:
        try:
            fn()
            self._commit()
        except redis.RedisError as exc:
            log.warning("broker unreachable: %s", exc)
            time.sleep(1)

    def _iterate(self, pending_first: bool) -> None:
        block_ms = max(50, int(min(self.config.tick_interval_s, 1.0) * 1000))
        stream_id = "0" if pending_first else ">"
        entries = self._read(stream_id, block_ms)
        if entries and len(entries) < self.config.read_count and self.config.coalesce_s > 0:
            time.sleep(self.config.coalesce_s)  # a trickle becomes a batch: one transaction, not hundreds
            entries += self._read(">", None)
        now = time.time()
        ids = [eid for eid, _ in entries]
        for _eid, data in entries:
            self._apply_event(Event.decode(data), now)
        self._run_commands()
        if self._tick_due(now):
            self._tick(now)
        if self._dirty_placement and not self._stopping:
            self._place_and_scale(now)
        self._commit()
        if ids:
            pipe = self.redis.pipeline(transaction=False)
            pipe.xack(self.keys.events, self.keys.events_group, *ids)
            pipe.xdel(self.keys.events, *ids)
            pipe.execute()

    def _read(self, stream_id: str, block_ms: int | None) -> list[tuple[str, dict]]:
        resp = self.redis.xreadgroup(
            self.keys.events_group, "controller", {self.keys.events: stream_id}, count=self.config.read_count, block=block_ms
        )
        if not resp:
            return []
        return list(resp[0][1])

    def _commit(self) -> None:
        batch, self.batch = self.batch, WriteBatch()
        self.store.commit(batch)
        for gid in self._finalized:
            run = self.runs.get(gid)
            if run is not None and run.status.is_final:
                del self.runs[gid]
        self._finalized.clear()
        for name in [n for n, node in self.nodes.items() if not node.state.is_live]:
            del self.nodes[name]

    def _run_commands(self) -> None:
        while True:
            try:
                cmd = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                result = cmd.fn()
                self._commit()
                cmd.future.set_result(result)
            except Exception as exc:
                self.batch = WriteBatch()
                cmd.future.set_exception(exc)

    def _tick_due(self, now: float) -> bool:
        """Celery beat publishes ticks to the tick queue; without beat, tick on our own clock."""
        ticks = 0
        try:
            pipe = self.redis.pipeline(transaction=True)
            pipe.llen(self.keys.tick_queue)
            pipe.delete(self.keys.tick_queue)
            ticks = pipe.execute()[0]
        except redis.RedisError:
            pass
        overdue = now - self._last_tick > 3 * self.config.tick_interval_s
        return bool(ticks) or overdue

    # ================================================================ events
    def _apply_event(self, ev: Event, now: float) -> None:
        if ev.type == STARTED:
            self._on_started(ev)
        elif ev.type == EXITED:
            self._on_exited(ev, now)
        elif ev.type == HEARTBEAT:
            self._on_heartbeat(ev, now)
        elif ev.type == REJECTED:
            run = self.runs.get(ev.global_id)
            if run is not None and run.attempt == ev.attempt and run.status == RunStatus.ASSIGNED:
                self._end_attempt(run, 0, now, True, f"rejected by {ev.node}: {ev.reason}", ev.node)
        elif ev.type == NODE_FAILED:
            node = self.nodes.get(ev.node)
            if node is not None:
                node.reason = ev.reason
                self._mark_node_dirty(node)

    def _on_started(self, ev: Event) -> None:
        run = self.runs.get(ev.global_id)
        if run is None or run.attempt != ev.attempt:
            return
        run.pid, run.pstart, run.started, run.started_ts = ev.pid, ev.pstart, True, ev.ts
        self.batch.attempts[(run.gid, ev.attempt)] = {"slot": ev.slot, "pid": ev.pid, "pgid_start": ev.pstart, "started_at": ev.ts, "node": ev.node}
        if run.status == RunStatus.ASSIGNED:
            run.status = RunStatus.RUNNING
            run.started_at = ev.ts
            self._mark_run_dirty(run)
            self.batch.event(run.gid, "running", ev.attempt, ev.node, f"slot {ev.slot}, pid {ev.pid}", ev.ts)
        node = self.nodes.get(ev.node)
        if node is not None and node.state == NodeState.STARTING:
            self._node_up(node, ev.ts)

    def _on_exited(self, ev: Event, now: float) -> None:
        run = self.runs.get(ev.global_id)
        if run is None or run.attempt != ev.attempt or not run.status.is_live:
            self.batch.attempts.setdefault((ev.global_id, ev.attempt), {}).update({"ended_at": ev.ts, "exit_code": ev.exit_code})
            return
        node = self.nodes.get(ev.node)
        if node is not None:
            node.runs.discard(run.gid)
            self._note_node_flags(node, ev)
            self._maybe_idle(node, now)
            self._dirty_placement = True
        if ev.interrupted or run.stop_requested:
            self._end_attempt(run, ev.exit_code, ev.ts, True, run.stop_requested or ev.reason or "node stopping", ev.node)
        elif node is None or node.state in (NodeState.STOPPING, NodeState.GONE):
            self._end_attempt(run, ev.exit_code, ev.ts, True, "node going away", ev.node)
        else:
            # Final only once the node shows life after it (SLURM's SIGTERM reaches runs and worker at once).
            run.exit_pending = (ev.exit_code, ev.ts, ev.node)
            self.pending_exits.setdefault(ev.node, set()).add(run.gid)

    def _on_heartbeat(self, ev: Event, now: float) -> None:
        node = self.nodes.get(ev.node)
        if node is None:
            return
        node.last_heartbeat = now
        if ev.version and ev.version != __version__:
            node.reason = f"worker runs JuQueue {ev.version}, the controller {__version__}"
            self.publisher.send_control(node.name, {"op": "shutdown", "reason": node.reason})
            self._node_failed(node, node.reason, now)
            return
        if node.state == NodeState.STARTING:
            self._node_up(node, now)
        self._note_node_flags(node, ev)
        self._mark_node_dirty(node)
        self._settle_unreported(node, ev, now)
        for gid in list(self.pending_exits.get(node.name, ())):
            run = self.runs.get(gid)
            if run is None or run.exit_pending is None or run.exit_pending[2] != node.name:
                continue
            code, ended, _ = run.exit_pending
            self._end_attempt(run, code, ended, ev.stopping, "node stopping" if ev.stopping else None, node.name)

    def _settle_unreported(self, node: NodeInfo, ev: Event, now: float) -> None:
        """A started attempt the worker no longer lists has ended: if its exit event was lost
        (the broker was down when it was sent), its exit file still tells how."""
        reported = set(ev.running)
        for gid in list(node.runs):
            run = self.runs.get(gid)
            if run is None or not run.started or run.exit_pending is not None or f"{gid}|{run.attempt}" in reported:
                continue
            if run.started_ts is None or run.started_ts >= ev.ts:
                continue  # started after the worker took this list: not a sign of anything
            if self._settle_from_exit_file(run, now):
                log.info("%s attempt %s: exit event lost, settled from its exit file", gid, run.attempt)

    def _note_node_flags(self, node: NodeInfo, ev: Event) -> None:
        """A worker that says it is draining or going away takes no new runs."""
        if ev.stopping and node.state in (NodeState.STARTING, NodeState.UP, NodeState.DRAINING):
            node.state = NodeState.STOPPING
            node.reason = node.reason or "worker shutting down"
            node.stop_sent_at = node.stop_sent_at or time.time()
            self._mark_node_dirty(node)
            self._dirty_placement = True
        elif ev.draining and node.state in (NodeState.STARTING, NodeState.UP):
            node.state = NodeState.DRAINING
            node.reason = "draining (wall time near)"
            self._mark_node_dirty(node)
            self._dirty_placement = True

    # ================================================================ run transitions
    def _mark_run_dirty(self, run: RunState) -> None:
        self.batch.runs[run.gid] = run.columns()

    def _mark_node_dirty(self, node: NodeInfo) -> None:
        self.batch.nodes[node.name] = node.columns()

    def _end_attempt(self, run: RunState, exit_code: int, ended_at: float, interrupted: bool, why: str | None, node_name: str | None) -> None:
        """The current attempt is over (known, not guessed): decide the run."""
        if run.exit_pending is not None:
            self.pending_exits.get(run.exit_pending[2], set()).discard(run.gid)
        run.exit_pending = None
        node = self.nodes.get(run.node or "")
        if node is not None:
            node.runs.discard(run.gid)
            self._maybe_idle(node, time.time())
        cancelled = (run.stop_requested or "").startswith("cancel")
        if cancelled:
            end_reason = EndReason.CANCELLED
        else:
            end_reason = EndReason.INTERRUPTED if interrupted else EndReason.EXITED
        self.batch.attempts.setdefault((run.gid, run.attempt), {}).update(
            {"ended_at": ended_at, "exit_code": exit_code if run.started or not interrupted else None,
             "end_reason": end_reason.value, "interrupted_by": why if interrupted else None}
        )
        run.stop_requested = None
        run.pid = run.pstart = None
        run.started, run.started_ts = False, None
        if cancelled:
            run.status, run.reason, run.ended_at = RunStatus.CANCELLED, "cancelled by the user", ended_at
            run.exit_code = exit_code
            self.batch.event(run.gid, "cancelled", run.attempt, node_name, None, ended_at)
        else:
            outcome = attempt_outcome(exit_code, interrupted, run.retries_used, run.max_retries)
            if outcome.spends_retry:
                run.retries_used += 1
            run.status, run.reason = outcome.status, outcome.reason if not interrupted else f"interrupted: {why}"
            if outcome.status.is_final:
                run.exit_code, run.ended_at = exit_code, ended_at
            else:
                run.queued_at = time.time()
            kind = "requeued" if outcome.status == RunStatus.QUEUED else outcome.status.value
            detail = f"exit code {exit_code}" if not interrupted else f"interrupted: {why} (exit code {exit_code})"
            self.batch.event(run.gid, kind, run.attempt, node_name, detail, ended_at)
        run.node = None if run.status == RunStatus.QUEUED else run.node
        self._mark_run_dirty(run)
        self._dirty_placement = True
        if run.status.is_final:
            self._on_final(run)
        else:
            self._enqueue(run)

    def _on_final(self, run: RunState) -> None:
        """A run ended for good: only its own dependents are touched."""
        self.queue.remove(run.gid)
        self.final_status[run.gid] = run.status
        self._finalized.add(run.gid)
        for gid in self.queue.waiting_on(run.gid):
            waiting = self.runs.get(gid)
            if waiting is None:
                continue
            if run.status == RunStatus.COMPLETED:
                self._enqueue(waiting)
            else:
                self._fail_run(waiting, f"dependency {run.gid} {run.status.value}")

    def _fail_run(self, run: RunState, reason: str) -> None:
        run.status, run.reason, run.ended_at = RunStatus.FAILED, reason, time.time()
        self.batch.event(run.gid, "failed", run.attempt, None, reason)
        self._mark_run_dirty(run)
        self._on_final(run)

    def _dep_status(self, gid: str) -> RunStatus | None:
        run = self.runs.get(gid)
        if run is not None:
            return run.status
        if gid not in self.final_status:
            self._prefetch_statuses([gid])
        if gid in self.final_status:
            return self.final_status[gid]
        return self.store.statuses([gid]).get(gid)

    def _prefetch_statuses(self, gids: Iterable[str]) -> None:
        missing = {g for g in gids if g not in self.runs and g not in self.final_status}
        for gid, status in self.store.statuses(missing).items():
            if status.is_final:
                self.final_status[gid] = status

    def _enqueue(self, run: RunState) -> None:
        """A QUEUED run becomes ready (placement), waits on its dependencies, or fails with them."""
        self.queue.remove(run.gid)
        if run.status != RunStatus.QUEUED or not run.defined:
            return
        if run.depends_on:
            statuses = {d: self._dep_status(d) for d in run.depends_on}
            readiness = dependency_readiness(statuses)
            if readiness.failed_reason:
                self._fail_run(run, readiness.failed_reason)
                return
            if not readiness.ready:
                self.queue.add_waiting(run.gid, {d for d, st in statuses.items() if st != RunStatus.COMPLETED})
                return
        if run.cluster not in self.config.clusters:
            reason = f"unknown cluster {run.cluster!r}"
            if run.reason != reason:
                run.reason = reason
                self._mark_run_dirty(run)
            return
        self.queue.add_ready(run.gid, run.cluster)
        self._dirty_placement = True

    # ================================================================ placement & scaling
    def _place_and_scale(self, now: float) -> None:
        self._dirty_placement = False
        free: dict[str, int] = {}
        for n in self.nodes.values():
            if n.state == NodeState.UP:
                free[n.cluster] = free.get(n.cluster, 0) + max(0, n.slots_total - len(n.runs))
        ready = {c: self.queue.head(c, free.get(c, 0)) for c in self.queue.clusters()}
        views = [
            NodeView(n.name, n.cluster, n.slots_total, len(n.runs), accepting=n.state == NodeState.UP,
                     time_left_s=(n.time_limit_at - now) if n.time_limit_at else None)
            for n in self.nodes.values()
        ]
        min_left = {c: spec.grace_period + 60 for c, spec in self.config.clusters.items()}
        assignments = place_runs(ready, views, min_time_left_s=max(min_left.values(), default=0))
        to_publish: list[Assignment] = []
        for gid, node_name in assignments:
            run, node = self.runs[gid], self.nodes[node_name]
            self.queue.remove(gid)
            run.attempt += 1
            run.status, run.node, run.reason = RunStatus.ASSIGNED, node_name, None
            node.runs.add(gid)
            node.idle_since = None
            self._mark_run_dirty(run)
            self.batch.new_attempts.append({"global_id": gid, "number": run.attempt, "node": node_name, "published_at": now})
            self.batch.event(gid, "assigned", run.attempt, node_name, None, now)
            to_publish.append(Assignment(gid, run.experiment, run.run_id, run.attempt, node_name, run.spec_json))
        if to_publish:
            self._commit()  # the store knows the attempt before any worker can see it
            self.publisher.publish(to_publish)
        self._scale_out(now)

    def _scale_out(self, now: float) -> None:
        for name, spec in self.config.clusters.items():
            health = self.health[name]
            if health.paused_reason and now >= health.paused_until:
                log.info("cluster %s: retrying submission after back-off", name)
                health.paused_reason = None
            nodes = [n for n in self.nodes.values() if n.cluster == name]
            starting_free = sum(n.slots_total - len(n.runs) for n in nodes if n.state in (NodeState.PENDING, NodeState.STARTING))
            load = ClusterLoad(
                ready_queued=self.queue.ready_count(name), num_slots=spec.num_slots, max_jobs=spec.max_jobs,
                free_slots_accepting=starting_free, live_nodes=len(nodes),
            )
            for _ in range(nodes_to_start(load, paused=health.paused_reason is not None)):
                self._start_node(spec, now)

    def _new_node_name(self, cluster: str) -> str:
        self._node_seq += 1
        return f"{cluster}-{int(time.time() * 1000) % 10**9:09d}-{self._node_seq}"

    def _start_node(self, spec: ClusterSpec, now: float) -> None:
        backend = self.backends[spec.type]
        node = NodeInfo(name=self._new_node_name(spec.name), cluster=spec.name, backend=spec.type, token=secrets.token_hex(8),
                        state=NodeState.PENDING, slots_total=spec.num_slots, created_at=now)
        self.nodes[node.name] = node
        self.batch.new_nodes.append({"name": node.name, "cluster": node.cluster, "backend": node.backend, "token": node.token,
                                     "slots_total": node.slots_total, "created_at": now, **node.columns()})
        self._write_node_config(node, spec)
        self._commit()  # the token is in the store before the job exists
        try:
            started = backend.start_node(spec, node.name, node.token)
        except BackendError as exc:
            self._node_failed(node, str(exc), now)
            self._start_failed(spec.name, str(exc), now)
            return
        node.state, node.job_id, node.pid = NodeState.STARTING, started.job_id, started.pid
        node.started_at = now
        if started.time_limit_s:
            node.time_limit_at = now + started.time_limit_s
        self._mark_node_dirty(node)
        log.info("started node %s (%s)", node.name, started.job_id or f"pid {started.pid}")

    def _write_node_config(self, node: NodeInfo, spec: ClusterSpec) -> None:
        write_json_atomic(
            self.work.node_dir(node.name) / "node.json",
            {"node": node.name, "token": node.token, "namespace": self.namespace, "version": __version__,
             "cluster": spec.model_dump(), "lease_ttl_s": self.config.lease_ttl_s,
             "controller_silence_s": self.config.controller_silence_s, "task_events": self.config.task_events},
        )

    def _start_failed(self, cluster: str, reason: str, now: float) -> None:
        health = self.health[cluster]
        health.start_failures += 1
        if health.start_failures >= self.config.max_start_failures:
            backoff = min(600.0, 30.0 * 2 ** (health.start_failures - self.config.max_start_failures))
            health.paused_reason = f"{health.start_failures} node starts failed; last: {reason}"
            health.paused_until = now + backoff
            log.error("cluster %s: pausing submission for %.0f s: %s", cluster, backoff, health.paused_reason)

    def _node_up(self, node: NodeInfo, now: float) -> None:
        node.state = NodeState.UP
        node.last_heartbeat = node.last_heartbeat or now
        node.reason = None
        self.health[node.cluster].start_failures = 0
        self._maybe_idle(node, now)
        self._mark_node_dirty(node)
        self._dirty_placement = True

    def _maybe_idle(self, node: NodeInfo, now: float) -> None:
        if not node.runs and node.idle_since is None:
            node.idle_since = now

    # ================================================================ node loss & stop
    def _node_failed(self, node: NodeInfo, reason: str, now: float) -> None:
        node.reason = reason
        self._settle_node_runs(node, reason, now)
        node.state = NodeState.FAILED
        node.ended_at = now
        self._mark_node_dirty(node)

    def _node_gone(self, node: NodeInfo, reason: str, now: float) -> None:
        self._settle_node_runs(node, reason, now)
        node.state = NodeState.GONE
        node.ended_at = now
        if node.reason is None or node.state != NodeState.FAILED:
            node.reason = reason
        self._mark_node_dirty(node)
        self._dirty_placement = True

    def _settle_node_runs(self, node: NodeInfo, reason: str, now: float) -> None:
        """The node is confirmed dead: kill leftovers, end its attempts as interrupted."""
        for gid in list(node.runs) + list(self.pending_exits.get(node.name, ())):
            run = self.runs.get(gid)
            if run is None or not run.status.is_live or run.node != node.name:
                continue
            if node.backend == "local" and run.pid:
                kill_group(run.pid, run.pstart)  # grandchildren included
            if run.exit_pending is not None:
                code, ended, _ = run.exit_pending
                self._end_attempt(run, code, ended, True, f"node lost: {reason}", node.name)
                continue
            self.redis.set(self.keys.current_attempt(gid), "fenced")
            self.leases.release(gid, run.attempt, node.name)
            self._end_attempt(run, -1, now, True, f"node lost: {reason}", node.name)
        node.runs.clear()
        try:
            self.publisher.delete_queue(node.name)
        except redis.RedisError:
            pass

    def _tick(self, now: float) -> None:
        self._last_tick = now
        self._check_redis_generation(now)
        self._check_liveness(now)
        self._stop_idle_nodes(now)
        self._dirty_placement = True

    def _check_liveness(self, now: float) -> None:
        by_backend: dict[str, dict[str, tuple[str | None, int | None]]] = {}
        for node in self.nodes.values():
            if node.state != NodeState.PENDING:
                by_backend.setdefault(node.backend, {})[node.name] = (node.job_id, node.pid)
        for kind, nodes in by_backend.items():
            backend = self.backends.get(kind)
            if backend is None:
                continue
            for name, live in backend.liveness(nodes).items():
                node = self.nodes[name]
                spec = self.config.clusters.get(node.cluster)
                if live.time_left_s is not None:
                    node.time_limit_at = now + live.time_left_s
                if not live.alive:
                    failure = self.work.node_dir(name) / "failure"
                    reason = failure.read_text().strip() if failure.exists() else live.reason
                    if node.state == NodeState.STARTING:
                        self._node_failed(node, reason, now)
                        self._start_failed(node.cluster, reason, now)
                    else:
                        self._node_gone(node, reason, now)
                    continue
                timeout = spec.heartbeat_timeout if spec else 30.0
                if node.state in (NodeState.UP, NodeState.DRAINING, NodeState.STOPPING) and node.last_heartbeat and now - node.last_heartbeat > timeout:
                    log.warning("node %s silent for %.0f s: ending it", name, now - node.last_heartbeat)
                    backend.stop_node(spec or _placeholder_cluster(node), name, node.job_id, node.pid)
                    if kind == "local":
                        self._node_gone(node, f"no heartbeat for {timeout:.0f} s", now)
                    else:
                        # Its runs are requeued once SLURM confirms the job gone (next poll).
                        node.state, node.reason = NodeState.STOPPING, f"no heartbeat for {timeout:.0f} s; job cancelled"
                        node.stop_sent_at = now
                        self._mark_node_dirty(node)
                elif node.state == NodeState.STARTING and node.started_at and now - node.started_at > self.config.start_timeout_s and kind == "local":
                    backend.stop_node(spec or _placeholder_cluster(node), name, node.job_id, node.pid)
                    self._node_failed(node, f"worker did not come up within {self.config.start_timeout_s:.0f} s", now)
                    self._start_failed(node.cluster, node.reason or "", now)
                elif node.state == NodeState.STOPPING and node.stop_sent_at and now - node.stop_sent_at > self.config.stop_escalate_s:
                    backend.stop_node(spec or _placeholder_cluster(node), name, node.job_id, node.pid)

    def _stop_idle_nodes(self, now: float) -> None:
        for name, spec in self.config.clusters.items():
            idle = {n.name: n.idle_since for n in self.nodes.values()
                    if n.cluster == name and n.state in (NodeState.UP, NodeState.DRAINING) and not n.runs and n.idle_since is not None}
            if not idle:
                continue
            # Runs that wait for this cluster keep its nodes.
            if self.queue.ready_count(name) and any(self.nodes[n].state == NodeState.UP for n in idle):
                continue
            for node_name in idle_nodes_to_stop(idle, now, spec.idle_timeout):  # type: ignore[arg-type]
                self._request_node_stop(self.nodes[node_name], "idle", now)

    def _request_node_stop(self, node: NodeInfo, reason: str, now: float) -> None:
        """Two-phase: record the stop of every attempt, then ask the worker to shut down."""
        for gid in node.runs:
            run = self.runs.get(gid)
            if run is not None and run.status.is_live:
                run.stop_requested = run.stop_requested or f"node stopped ({reason})"
                self.batch.attempts.setdefault((gid, run.attempt), {})["stop_requested"] = run.stop_requested
        node.state = NodeState.STOPPING
        node.reason = f"stopping: {reason}"
        node.stop_sent_at = now
        self._mark_node_dirty(node)
        self._commit()
        self.publisher.send_control(node.name, {"op": "shutdown", "reason": reason})

    def _shutdown_nodes(self, cancel_jobs: bool) -> None:
        self._stopping = True
        now = time.time()
        for node in list(self.nodes.values()):
            if node.backend == "local" or cancel_jobs:
                self._request_node_stop(node, "server stopping", now)
        deadline = time.time() + max((c.grace_period for c in self.config.clusters.values()), default=10) + 10
        local = [n for n in self.nodes.values() if n.state == NodeState.STOPPING]
        while local and time.time() < deadline:
            entries = self._read(">", 200)
            for _eid, data in entries:
                self._apply_event(Event.decode(data), time.time())
            by_backend: dict[str, dict[str, tuple[str | None, int | None]]] = {}
            for n in local:
                by_backend.setdefault(n.backend, {})[n.name] = (n.job_id, n.pid)
            for kind, group in by_backend.items():
                for name, live in self.backends[kind].liveness(group).items():
                    if not live.alive:
                        self._node_gone(self.nodes[name], "server stopped", time.time())
            self._commit()
            local = [n for n in self.nodes.values() if n.state == NodeState.STOPPING]
        for node in local:
            self.backends[node.backend].stop_node(self.config.clusters.get(node.cluster) or _placeholder_cluster(node), node.name, node.job_id, node.pid)
            self._node_gone(node, "server stopped", time.time())
        self._commit()

    # ================================================================ user actions (controller thread)
    def cancel_runs(self, gids: list[str]) -> list[str]:
        done = []
        for gid in gids:
            run = self.runs.get(gid)
            if run is None or run.status.is_final:
                continue
            if run.status == RunStatus.QUEUED:
                run.status, run.reason, run.ended_at = RunStatus.CANCELLED, "cancelled by the user", time.time()
                self.batch.event(gid, "cancelled", run.attempt, None, "cancelled by the user")
                self._mark_run_dirty(run)
                self._on_final(run)
            else:
                self._stop_attempt(run, "cancelled by the user")
            done.append(gid)
        return done

    def _stop_attempt(self, run: RunState, reason: str) -> None:
        run.stop_requested = "cancel" if reason.startswith("cancel") else reason
        self.batch.attempts.setdefault((run.gid, run.attempt), {})["stop_requested"] = run.stop_requested
        self._commit()
        if self.leases.fence_unclaimed(run.gid, run.attempt):
            self._end_attempt(run, 0, time.time(), True, reason, run.node)
            return
        spec = self.config.clusters.get(run.cluster)
        self.publisher.send_control(run.node or "", {"op": "stop", "global_id": run.gid, "attempt": run.attempt, "reason": reason,
                                                     "grace": spec.grace_period if spec else 30})

    def requeue_runs(self, gids: list[str]) -> list[str]:
        """FAILED or CANCELLED runs go back to QUEUED (a fresh retry budget)."""
        rows = self.store.runs_by_id(gids)
        done = []
        now = time.time()
        for gid in gids:
            row = rows.get(gid)
            if row is None or RunStatus(row.status) not in (RunStatus.FAILED, RunStatus.CANCELLED):
                continue
            run = RunState.from_row(row)
            run.status, run.reason, run.exit_code, run.ended_at = RunStatus.QUEUED, "requeued by the user", None, None
            run.retries_used, run.queued_at, run.node = 0, now, None
            self.runs[gid] = run
            self.final_status.pop(gid, None)
            self._mark_run_dirty(run)
            self.batch.event(gid, "requeued", run.attempt, None, "requeued by the user")
            self._enqueue(run)
            done.append(gid)
        self._dirty_placement = True
        return done

    def apply_definitions(self, result) -> dict:
        """Apply a reload's result, then take new and changed queued runs into memory."""
        summary = self.store.apply_definitions(result)
        changed = set(summary.added) | set(summary.updated) | set(summary.undefined) | set(summary.redefined)
        rows = self.store.runs_by_id(changed)
        self._prefetch_statuses(d for row in rows.values() for d in json.loads(row.depends_on or "[]"))
        queued = []
        for gid, row in rows.items():
            if RunStatus(row.status) == RunStatus.QUEUED:
                self.runs[gid] = RunState.from_row(row)
                queued.append(self.runs[gid])
            elif gid in self.runs:
                self.runs[gid].defined = row.defined
        for run in queued:  # after all are in memory: they may depend on each other
            self._enqueue(run)
        self.definition_errors = [str(e) for e in result.errors]
        self._dirty_placement = True
        return {"added": summary.added, "updated": summary.updated, "undefined": summary.undefined,
                "errors": self.definition_errors}

    def cluster_health(self) -> dict[str, str | None]:
        return {name: h.paused_reason for name, h in self.health.items()}

    def nodes_snapshot(self) -> list[dict]:
        """Live nodes as the API shows them (call on the controller thread)."""
        return [
            {"name": n.name, "cluster": n.cluster, "type": n.backend, "state": n.state.value,
             "slots_used": len(n.runs), "slots_total": n.slots_total, "runs": sorted(n.runs),
             "job_id": n.job_id, "reason": n.reason, "last_heartbeat": n.last_heartbeat,
             "started_at": n.started_at, "time_limit_at": n.time_limit_at}
            for n in sorted(self.nodes.values(), key=lambda n: n.name)
        ]


def _placeholder_cluster(node: NodeInfo) -> ClusterSpec:
    """A cluster that left clusters.yaml still needs its nodes stopped."""
    return ClusterSpec(name=node.cluster, type=node.backend if node.backend in ("local", "slurm") else "local")  # type: ignore[arg-type]


def namespace_for(work_root: Path) -> str:
    import hashlib

    return hashlib.sha256(str(work_root.resolve()).encode()).hexdigest()[:10]
