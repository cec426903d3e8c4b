"""The controller: the loop on its one thread, and the facade the API and `serve` call.

Events are read from the Redis stream in batches and committed to the store in one
transaction before they are acknowledged. Placement follows every batch at once (a slot
freed, a run queued, a node up), and the reconcile tick (triggered by Celery beat) is the
safety net: liveness, idle nodes, Redis resets. Ticks, events and user commands share this
one thread, so they never run at the same time. The pieces, each on the shared state:
lifecycle (runs), ingest (events), dispatch (placement), fleet and node_loss (nodes),
recovery (store and Redis), actions (users), feed (the live feed, built at commit), views
(what the API's overview reads, published at commit: a read never waits for this thread).
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Callable, Mapping

import redis
from sqlalchemy.exc import SQLAlchemyError

from celery import Celery

from juqueue.backends.base import NodeBackend
from juqueue.broker.keys import Keys
from juqueue.broker.event_stream import EventStream, Generation
from juqueue.broker.leases import Leases
from juqueue.controller.actions import UserActions
from juqueue.controller.budgets import BudgetKeeper
from juqueue.controller.clock import Clock, SystemClock
from juqueue.controller.config import ControllerConfig
from juqueue.controller.consolidator import Consolidator
from juqueue.controller.replacements import Replacements
from juqueue.controller.dispatch import Dispatch
from juqueue.controller.feed import Feed
from juqueue.controller.fleet import Fleet
from juqueue.controller.ingest import EventIngest
from juqueue.controller.lifecycle import RunLifecycle
from juqueue.controller.node_actions import NodeActionResult, NodeActions
from juqueue.controller.node_loss import NodeLoss
from juqueue.controller.publisher import Publisher
from juqueue.controller.recovery import Recovery
from juqueue.controller.shutdown import shutdown_nodes
from juqueue.controller.state import ControllerState
from juqueue.controller.status_view import StatusReads, StatusViews
from juqueue.controller.timing import BatchTimes
from juqueue.controller.usage import UsageSampler
from juqueue.definitions.models import ClusterSpec
from juqueue.events import Event
from juqueue.store.store import Store, WriteBatch

log = logging.getLogger(__name__)

__all__ = ["Controller", "ControllerConfig", "namespace_for"]


@dataclass
class _Command:
    fn: Callable[[], object]
    future: Future = field(default_factory=Future)


class Controller(StatusReads):
    def __init__(self, config: ControllerConfig, store: Store, stream: EventStream, leases: Leases, generation: Generation,
                 publisher: Publisher, backends: dict[str, NodeBackend], namespace: str, clock: Clock | None = None) -> None:
        self.config = config
        self.stream = stream
        self.backends = backends
        self.s = state = ControllerState(config, store, clock or SystemClock())
        self.lifecycle = RunLifecycle(state)
        self.loss = NodeLoss(state, self.lifecycle, backends, publisher, leases)
        self.budgets = BudgetKeeper(state)
        self.fleet = Fleet(state, self.lifecycle, self.loss, backends, publisher, namespace, self.budgets)
        self.ingest = EventIngest(state, self.lifecycle, self.fleet, self.loss, publisher)
        self.dispatch = Dispatch(state, publisher)
        self.recovery = Recovery(state, self.lifecycle, self.loss, backends, stream, leases, generation)
        self.actions = UserActions(state, self.lifecycle, publisher, leases, self.budgets)
        self.consolidator = Consolidator(state, self.fleet, self.loss, self.actions, backends)
        self.replacements = Replacements(state, self.fleet, self.budgets)
        self.node_actions = NodeActions(state, self.fleet, self.loss, backends)
        self.usage = UsageSampler(state)
        self.feed = Feed(state, self.nodes_snapshot, self.usage.point)  # one message per committed batch
        self.views = StatusViews(self.build_status_view)
        state.on_commit = self._on_commit
        self.batch_times = BatchTimes()  # each batch's duration, for /api/status
        self._commands: queue.Queue[_Command] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_tick = 0.0
        self.store_error: str | None = None  # "store unavailable: ..." while commits fail
        # clusters.yaml as last applied, for other threads (the API): config.clusters changes on
        # this controller's thread only; readers get an immutable copy, replaced whole after a reload
        self.clusters_view: Mapping[str, ClusterSpec] = MappingProxyType(dict(config.clusters))
        self.keys = stream.keys

    @classmethod
    def on_redis(cls, config: ControllerConfig, store: Store, client: redis.Redis, app: Celery,
                 backends: dict[str, NodeBackend], namespace: str) -> "Controller":
        """The controller as `serve` runs it: its inbox, fencing and publishing on one Redis."""
        keys = Keys(namespace)
        return cls(config, store, EventStream(client, keys), Leases(client, keys),
                   Generation(client, keys, config.controller_silence_s), Publisher(config.work, keys, client, app),
                   backends, namespace)

    # ================================================================ public (any thread)
    @property
    def nodes(self) -> dict:
        return self.s.nodes

    @property
    def definition_errors(self) -> list[str]:
        return self.s.definition_errors

    @definition_errors.setter
    def definition_errors(self, errors: list[str]) -> None:
        self.s.definition_errors = errors
        if self._thread is not None and self._thread.is_alive() and threading.current_thread() is not self._thread:
            self.call(lambda: None)  # a command publishes the status view: the next read shows them

    def start(self) -> None:
        self.recovery.load(at_start=True)
        self.consolidator.adopt()
        self.views.publish()
        self._thread = threading.Thread(target=self._loop, name="juqueue-controller", daemon=True)
        self._thread.start()

    def call(self, fn: Callable[[], object], timeout_s: float = 120.0) -> object:
        """Run `fn` on the controller thread (between batches) and return its result."""
        cmd = _Command(fn)
        self._commands.put(cmd)
        self.stream.wake(time.time())
        return cmd.future.result(timeout_s)

    def shutdown(self, cancel_jobs: bool = False, timeout_s: float = 60.0) -> None:
        if self._thread is None:
            return
        try:
            self.call(lambda: shutdown_nodes(self.s, self.fleet, self.loss, self.ingest, self.stream, self.backends,
                                             cancel_jobs), timeout_s)
        finally:
            self._stop.set()
            self.stream.wake(time.time())
            self._thread.join(timeout_s)

    # user actions: call these through `call` (they run on the controller thread)
    def cancel_runs(self, gids: list[str]) -> list[str]:
        return self.actions.cancel_runs(gids)

    def requeue_runs(self, gids: list[str]) -> list[str]:
        return self.actions.requeue_runs(gids)

    def hold_runs(self, gids: list[str]) -> list[str]:
        return self.actions.hold_runs(gids)

    def release_runs(self, gids: list[str]) -> list[str]:
        return self.actions.release_runs(gids)

    def resume_runs(self, gids: list[str], completed: bool = False) -> list[str]:
        return self.actions.resume_runs(gids, completed)

    def drain_node(self, name: str, why: str | None = None) -> NodeActionResult:
        return self.node_actions.drain(name, why)

    def stop_node(self, name: str, why: str | None = None) -> NodeActionResult:
        return self.node_actions.stop(name, why)

    def apply_definitions(self, result) -> dict:  # type: ignore[no-untyped-def]
        try:
            return self.actions.apply_definitions(result)
        finally:
            self.feed.resync("reload")  # the store's runs changed outside the batch

    def apply_clusters(self, clusters: dict) -> dict:  # type: ignore[type-arg]
        """On the controller thread: apply a reloaded clusters.yaml, then publish the new view."""
        changes = self.actions.apply_clusters(clusters)
        self.clusters_view = MappingProxyType(dict(self.config.clusters))
        return changes

    # ================================================================ the loop
    def _loop(self) -> None:
        pending_first = True
        while not self._stop.is_set():
            try:
                pending_first = self.iterate(pending_first)
            except SQLAlchemyError as exc:
                self._wait_for_store(exc)
                pending_first = True  # what was read but not committed is read again
            except redis.ResponseError as exc:
                if "NOGROUP" in str(exc):
                    log.warning("event stream is gone (Redis reset?)")
                    self._guarded(lambda: self.recovery.check_redis(self.s.now()))
                else:
                    log.exception("controller iteration failed")
                    time.sleep(1)
            except redis.RedisError as exc:
                log.warning("broker unreachable: %s", exc)
                time.sleep(1)
            except Exception:  # keep the controller alive; the store holds the truth
                log.exception("controller iteration failed; rebuilding from the store")
                self._rebuild()
                time.sleep(1)

    def _on_commit(self, batch: WriteBatch) -> None:
        self.feed.on_commit(batch)
        self.views.after_commit(bool(batch))

    def _guarded(self, fn: Callable[[], None]) -> None:
        try:
            fn()
            self.s.commit()
        except redis.RedisError as exc:
            log.warning("broker unreachable: %s", exc)
            time.sleep(1)

    def _wait_for_store(self, exc: Exception) -> None:
        """A commit failed: consume nothing, retry with back-off, then rebuild memory from the
        store; the events of the failed batch were not acknowledged and are read again."""
        delay = 0.5
        while not self._stop.is_set():
            self.store_error = f"store unavailable: {_first_line(exc)}"
            log.error("%s; retrying in %.1f s", self.store_error, delay)
            self._stop.wait(delay)
            # What the store refused is never written later (say by a command's commit): it is
            # derived again from the store and the unacknowledged events. A command that needs
            # the store meanwhile fails with the store's error; the loop goes on waiting.
            self.s.batch = WriteBatch()
            self.s.store.reset_connections()  # none opened during the outage is reused
            try:
                self._rebuild()  # first: a command must never act on memory the store did not see
            except (SQLAlchemyError, redis.RedisError) as again:
                if isinstance(again, SQLAlchemyError):
                    exc = again
                else:
                    log.warning("broker unreachable while rebuilding: %s", again)
                delay = min(self.config.store_retry_max_s, delay * 2)
                self.s.batch = WriteBatch()  # what the failed rebuild gathered is never written
                try:
                    self._run_commands()  # `status` is answered from memory meanwhile
                except SQLAlchemyError:
                    self.s.batch = WriteBatch()
                continue
            log.warning("store available again; memory rebuilt from it")
            self.store_error = None
            return

    def _rebuild(self) -> None:
        self.s.forget()
        self.recovery.load(at_start=False)
        self.consolidator.adopt()
        self.feed.resync("memory rebuilt from the store")
        self.views.publish()

    def iterate(self, pending_first: bool) -> bool:
        """One batch: read, apply, act, commit, then acknowledge. Returns whether unacknowledged
        entries may remain to be read again."""
        block_ms = max(50, int(min(self.config.tick_interval_s, 1.0) * 1000))
        count = self.config.read_count
        entries = self.stream.read(pending_first, None if pending_first else block_ms, count)
        if not pending_first and entries and len(entries) < count and self.config.coalesce_s > 0:
            time.sleep(self.config.coalesce_s)  # a trickle becomes a batch: one transaction, not hundreds
            entries += self.stream.read(False, None, count)
        started, now = time.perf_counter(), self.s.now()
        for _eid, data in entries:
            self.ingest.apply(Event.decode(data), now)
        self._run_commands()
        ticked = self._tick_due(now)
        if ticked:
            self._tick(now)
        if self.s.dirty_placement and not self.s.stopping:
            self._place_and_scale(now, moves_allowed=ticked)
        self.s.commit()
        self.stream.ack([eid for eid, _ in entries])
        if entries or ticked:
            self.batch_times.record(time.perf_counter() - started)
        return pending_first and len(entries) >= count

    def _place_and_scale(self, now: float, moves_allowed: bool) -> None:
        """Surplus first (placement puts runs there last), then placement, node starts up to
        the target, and consolidation: empty surplus nodes go at once, moves only on ticks.
        Nodes a user drained go first once empty."""
        self.node_actions.release_drained(now)
        self.consolidator.plan(now)
        self.dispatch.place(now)
        self.fleet.scale_out(now, {c: v.target for c, v in self.consolidator.views.items()})
        self.consolidator.act(now, moves_allowed)

    def _run_commands(self) -> None:
        """The commands queued before this batch: one queued meanwhile (the next chunk of a large
        selection) waits for the next batch, so events are handled in between."""
        for _ in range(self._commands.qsize()):
            try:
                cmd = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                result = cmd.fn()
                self.views.wanted_now()  # the caller may read the overview next: it shows what this did
                self.s.commit()
                cmd.future.set_result(result)
            except SQLAlchemyError as exc:
                cmd.future.set_exception(exc)
                raise  # memory may hold what the store refused: rebuild
            except Exception as exc:
                cmd.future.set_exception(exc)

    def _tick_due(self, now: float) -> bool:
        """Celery beat publishes ticks to the tick queue; without beat, tick on our own clock."""
        ticks = self.stream.take_ticks()
        return bool(ticks) or now - self._last_tick > 3 * self.config.tick_interval_s

    def _tick(self, now: float) -> None:
        self._last_tick = now
        self.recovery.check_redis(now)
        self.fleet.check_liveness(now)
        self.fleet.stop_idle_nodes(now)
        self.replacements.start_due(now)
        self.usage.sample(now)
        self.s.flush_heartbeats()
        self.s.dirty_placement = True


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def namespace_for(work_root: Path) -> str:
    """Redis key namespace of a work dir: two JuQueue instances may share one broker."""
    return hashlib.sha256(str(work_root.resolve()).encode()).hexdigest()[:10]
