"""Fakes for driving the controller's decisions without Redis, Celery, SLURM or processes.

The controller's collaborators are replaced by in-memory doubles that record what they were
asked to do (a fake backend, event stream, leases, publisher and clock), while the store is
the real one on a SQLite file. `Harness` builds a controller on them, loads it as `serve`
would (without the thread) and drives `iterate` one batch at a time, playing the workers'
part by pushing events onto the fake stream.

Ticks are explicit: the harness sets `tick_interval_s` so large that the controller's own
fallback tick (after 3 * tick_interval_s on the clock) never fires by accident; a test ticks
with `Harness.tick()` (one beat tick on the fake stream, then one batch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from juqueue.backends.base import BackendError, NodeLiveness, StartedNode
from juqueue.broker.keys import Keys
from juqueue.controller.config import ControllerConfig
from juqueue.controller.controller import Controller, _Command
from juqueue.controller.publisher import Assignment
from juqueue.definitions.models import ClusterSpec, LoadResult, RunSpec
from juqueue.events import EXITED, HEARTBEAT, REJECTED, STARTED, WAKE, Event
from juqueue.paths import WorkDir
from juqueue.store.engine import make_engine
from juqueue.store.store import Store
from juqueue.version import __version__

START_TIME = 1_000.0
TICK_INTERVAL_S = 3_600.0  # the fallback tick comes after 3 h on the fake clock: never by accident


class FakeClock:
    def __init__(self, now: float = START_TIME) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def set(self, now: float) -> None:
        self.now = now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


class FakeStream:
    """The controller's inbox: entries with ids, delivered once, re-read while unacknowledged."""

    def __init__(self, namespace: str = "test") -> None:
        self.keys = Keys(namespace)
        self.entries: list[tuple[str, dict[str, str]]] = []  # not yet acknowledged, in order
        self.delivered: set[str] = set()
        self.acked: list[str] = []
        self.ticks = 0
        self.groups_ensured = 0
        self._seq = 0

    # ---- what workers and beat do
    def push(self, data: dict[str, str]) -> str:
        self._seq += 1
        eid = f"{self._seq}-0"
        self.entries.append((eid, dict(data)))
        return eid

    def tick(self, n: int = 1) -> None:
        self.ticks += n

    # ---- the EventStream interface
    def ensure_group(self) -> None:
        self.groups_ensured += 1

    def read(self, pending: bool, block_ms: int | None, count: int) -> list[tuple[str, dict[str, str]]]:
        if pending:
            return [(eid, dict(d)) for eid, d in self.entries if eid in self.delivered][:count]
        out = [(eid, dict(d)) for eid, d in self.entries if eid not in self.delivered][:count]
        self.delivered.update(eid for eid, _ in out)
        return out

    def ack(self, ids: list[str]) -> None:
        gone = set(ids)
        self.acked.extend(ids)
        self.entries = [(eid, d) for eid, d in self.entries if eid not in gone]
        self.delivered -= gone

    def wake(self, now: float) -> None:
        self.push(Event(type=WAKE, ts=now).encode())

    def take_ticks(self) -> int:
        n, self.ticks = self.ticks, 0
        return n

    # ---- for assertions
    def unacked(self) -> list[str]:
        return [eid for eid, _ in self.entries if eid in self.delivered]

    def undelivered(self) -> list[str]:
        return [eid for eid, _ in self.entries if eid not in self.delivered]


class FakeGeneration:
    """Redis keeps its state unless the test says it was reset (`simulate_reset`)."""

    def __init__(self) -> None:
        self.resets_pending = 0
        self.advances = 0
        self.reset_calls: list[float] = []

    def simulate_reset(self, times: int = 1) -> None:
        self.resets_pending += times

    def advance(self, now: float) -> bool:
        self.advances += 1
        if self.resets_pending:
            self.resets_pending -= 1
            return False
        return True

    def reset(self, now: float, pipe: object = None) -> None:
        self.reset_calls.append(now)


class FakeLeases:
    """Fencing keys in a dict. An attempt counts as claimed by a worker when the test (or the
    harness, when it plays a worker starting it) put it in `claimed`."""

    def __init__(self) -> None:
        self.current: dict[str, object] = {}
        self.claimed: set[tuple[str, int]] = set()
        self.fenced: list[str] = []
        self.released: list[tuple[str, int, str]] = []
        self.fence_unclaimed_calls: list[tuple[str, int]] = []
        self.set_current_calls: list[dict[str, int]] = []

    def fence(self, global_id: str) -> None:
        self.fenced.append(global_id)
        self.current[global_id] = "fenced"

    def release(self, global_id: str, attempt: int, node: str, client: object = None) -> None:
        self.released.append((global_id, attempt, node))
        self.claimed.discard((global_id, attempt))

    def fence_unclaimed(self, global_id: str, attempt: int) -> bool:
        self.fence_unclaimed_calls.append((global_id, attempt))
        if (global_id, attempt) in self.claimed:
            return False
        self.current[global_id] = "fenced"
        return True

    def set_current_many(self, attempts: dict[str, int]) -> None:
        self.set_current_calls.append(dict(attempts))
        self.current.update(attempts)


class FakePublisher:
    def __init__(self) -> None:
        self.published: list[Assignment] = []
        self.controls: list[tuple[str, dict]] = []
        self.deleted_queues: list[str] = []

    def publish(self, assignments: list[Assignment]) -> None:
        self.published.extend(assignments)

    def send_control(self, node: str, command: dict) -> None:
        self.controls.append((node, dict(command)))

    def delete_queue(self, node: str) -> None:
        self.deleted_queues.append(node)

    # ---- for assertions
    def latest(self, gid: str) -> Assignment | None:
        for a in reversed(self.published):
            if a.global_id == gid:
                return a
        return None

    def to_node(self, node: str) -> list[Assignment]:
        return [a for a in self.published if a.node == node]


class FakeBackend:
    """A node backend that starts nothing. `scheduler=True` stands for SLURM (a silent node's
    loss is confirmed by the scheduler; nodes outlive the server), `scheduler=False` for local
    processes (they die with the server; a silent node is gone at once)."""

    def __init__(self, kind: str, scheduler: bool) -> None:
        self.kind = kind
        self.dies_with_server = not scheduler
        self.loss_confirmed_by_scheduler = scheduler
        self.exit_settle_s = 0.0  # SlurmBackend waits 2 s; tests of that rule set it
        self.start_errors: list[str] = []  # each start pops one and raises it, while any are left
        self.time_limit_s: float | None = None
        self.alive: dict[str, NodeLiveness] = {}  # node -> answer; nodes not listed are alive
        self.started: list[str] = []  # node names, in order
        self.start_calls = 0
        self.stopped: list[tuple[str, str | None, int | None]] = []
        self.killed: list[tuple[int, int | None]] = []
        self.liveness_calls: list[dict[str, tuple[str | None, int | None]]] = []
        self._seq = 0

    def fail_starts(self, n: int, message: str = "sbatch: error: Batch job submission failed") -> None:
        self.start_errors.extend([message] * n)

    def mark_gone(self, node: str, reason: str = "job ended") -> None:
        self.alive[node] = NodeLiveness(alive=False, reason=reason)

    def start_node(self, cluster: ClusterSpec, node: str, token: str) -> StartedNode:
        self.start_calls += 1
        if self.start_errors:
            raise BackendError(self.start_errors.pop(0))
        self._seq += 1
        self.started.append(node)
        if self.loss_confirmed_by_scheduler:
            return StartedNode(job_id=str(7000 + self._seq), time_limit_s=self.time_limit_s)
        return StartedNode(pid=50_000 + self._seq, time_limit_s=self.time_limit_s)

    def stop_node(self, node: str, job_id: str | None, pid: int | None) -> None:
        self.stopped.append((node, job_id, pid))

    def recorded_end(self, job_id: str | None) -> float | None:
        return None

    def kill_run_group(self, pid: int, start_time: int | None) -> None:
        self.killed.append((pid, start_time))

    def liveness(self, nodes: dict[str, tuple[str | None, int | None]]) -> dict[str, NodeLiveness]:
        self.liveness_calls.append(dict(nodes))
        return {name: self.alive.get(name, NodeLiveness(alive=True)) for name in nodes}


def run_specs(n: int, cluster: str, experiment: str = "exp", max_retries: int = 0, **fields: object) -> list[RunSpec]:
    """`n` runs r0.. of one cluster; `fields` are further RunSpec fields (movable, duration, ...)."""
    return [RunSpec(experiment=experiment, id=f"r{i}", cluster=cluster, cmd=["true"], max_retries=max_retries,
                    **fields) for i in range(n)]  # type: ignore[arg-type]


@dataclass
class Harness:
    """A controller on fakes and a real store, driven one batch at a time."""

    controller: Controller
    store: Store
    clock: FakeClock
    stream: FakeStream
    generation: FakeGeneration
    leases: FakeLeases
    publisher: FakePublisher
    backends: dict[str, FakeBackend]
    # the fake workers: node -> "gid|attempt" they run (what their heartbeats list)
    worker_running: dict[str, set[str]] = field(default_factory=dict)
    _pid: int = 1000

    # ---- driving
    def step(self, pending: bool = False) -> bool:
        """One batch of the controller loop."""
        return self.controller.iterate(pending)

    def tick(self) -> bool:
        """A beat tick, then one batch (which runs the reconcile tick)."""
        self.stream.tick()
        return self.step()

    def command(self, fn: Callable[[], object]) -> object:
        """What `Controller.call` does, without its thread: the command runs inside the next batch."""
        cmd = _Command(fn)
        self.controller._commands.put(cmd)
        self.stream.wake(self.clock.time())
        self.step()
        return cmd.future.result(0)

    # ---- the workers' events
    def push(self, ev: Event) -> str:
        return self.stream.push(ev.encode())

    def heartbeat(self, node: str, stopping: bool = False, draining: bool = False, running: list[str] | None = None) -> str:
        listed = sorted(self.worker_running.get(node, ())) if running is None else running
        return self.push(Event(type=HEARTBEAT, node=node, ts=self.clock.time(), stopping=stopping, draining=draining,
                               running=listed, version=__version__))

    def started(self, gid: str, claim: bool = True, slot: int = 0) -> str:
        """The worker of the run's latest assignment claims (unless told not to) and starts it."""
        a = self.publisher.latest(gid)
        assert a is not None, f"{gid} was never published"
        if claim:
            self.leases.claimed.add((gid, a.attempt))
        self._pid += 1
        self.worker_running.setdefault(a.node, set()).add(f"{gid}|{a.attempt}")
        return self.push(Event(type=STARTED, node=a.node, ts=self.clock.time(), global_id=gid, attempt=a.attempt,
                               slot=slot, pid=self._pid, pstart=self._pid * 10))

    def exited(self, gid: str, exit_code: int = 0, interrupted: bool = False, reason: str = "",
               attempt: Assignment | None = None) -> str:
        """The run's latest assignment (or `attempt`, an older one) ended on its worker."""
        a = attempt or self.publisher.latest(gid)
        assert a is not None, f"{gid} was never published"
        self.worker_running.get(a.node, set()).discard(f"{gid}|{a.attempt}")
        return self.push(Event(type=EXITED, node=a.node, ts=self.clock.time(), global_id=gid, attempt=a.attempt,
                               exit_code=exit_code, interrupted=interrupted, reason=reason))

    def rejected(self, gid: str, reason: str = "draining") -> str:
        a = self.publisher.latest(gid)
        assert a is not None, f"{gid} was never published"
        return self.push(Event(type=REJECTED, node=a.node, ts=self.clock.time(), global_id=gid, attempt=a.attempt, reason=reason))

    # ---- looking
    def run(self, gid: str):  # type: ignore[no-untyped-def]
        row = self.store.get_run(gid)
        assert row is not None, gid
        return row

    def status(self, gid: str) -> str:
        return self.run(gid).status

    def event_kinds(self, gid: str) -> list[str]:
        return [e.kind for e in self.store.events_of(gid)]

    def node(self, name: str):  # type: ignore[no-untyped-def]
        """The node's row in the store."""
        for row in self.store.all_nodes():
            if row.name == name:
                return row
        raise AssertionError(f"no node {name}")

    def nodes_of(self, cluster: str) -> list[str]:
        return sorted(n.name for n in self.controller.nodes.values() if n.cluster == cluster)

    def restart(self, after_s: float = 5.0) -> None:
        """`serve` again `after_s` later on the same store, backends and broker: a new controller,
        loaded at start."""
        self.clock.advance(after_s)
        old = self.controller
        self.controller = Controller(old.config, self.store, self.stream, self.leases, self.generation,  # type: ignore[arg-type]
                                     self.publisher, self.backends, namespace="test", clock=self.clock)  # type: ignore[arg-type]
        self.controller.recovery.load(at_start=True)
        self.controller.consolidator.adopt()  # as Controller.start does

    def close(self) -> None:
        self.store.engine.dispose()


def build_harness(tmp_path: Path, clusters: list[ClusterSpec], runs: list[RunSpec],
                  backends: dict[str, FakeBackend] | None = None, **config: object) -> Harness:
    """A controller on a real store (SQLite in `tmp_path`) with these clusters and runs defined,
    loaded as at `serve` (recovery.load(at_start=True)), no thread started."""
    work = WorkDir(tmp_path)
    store = Store(make_engine(None, tmp_path))
    clock = FakeClock()
    experiments = {spec.experiment: f"{spec.experiment}.yaml" for spec in runs}
    store.apply_definitions(LoadResult(runs=runs, experiments=experiments), now=clock.time())
    backends = backends if backends is not None else {
        "local": FakeBackend("local", scheduler=False), "slurm": FakeBackend("slurm", scheduler=True)}
    settings: dict[str, object] = {"tick_interval_s": TICK_INTERVAL_S, "coalesce_s": 0.0}
    settings.update(config)
    cfg = ControllerConfig(work=work, clusters={c.name: c for c in clusters}, **settings)  # type: ignore[arg-type]
    stream, generation, leases, publisher = FakeStream(), FakeGeneration(), FakeLeases(), FakePublisher()
    controller = Controller(cfg, store, stream, leases, generation, publisher, backends,  # type: ignore[arg-type]
                            namespace="test", clock=clock)
    controller.recovery.load(at_start=True)
    controller.consolidator.adopt()  # as Controller.start does
    return Harness(controller, store, clock, stream, generation, leases, publisher, backends)


__all__ = ["FakeBackend", "FakeClock", "FakeGeneration", "FakeLeases", "FakePublisher", "FakeStream",
           "Harness", "InlineController", "build_harness", "run_specs"]


class InlineController:
    """The harness's controller, with `call` running the command inside the next batch (as
    the controller thread would, then committing)."""

    def __init__(self, h: Harness) -> None:
        self._h = h

    def call(self, fn, timeout_s: float = 120.0):  # type: ignore[no-untyped-def]
        return self._h.command(fn)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._h.controller, name)
