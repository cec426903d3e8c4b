"""What one node's worker keeps: its live attempts, the claim that must succeed before an
attempt starts, and the node's state (draining, stopping, heartbeats asked for).

The live table is shared by the pool's threads (one per attempt, `run_attempt`) and the
control thread (`juqueue.workers.control`: heartbeats, stops); `_lock` guards it. An attempt
is in the table from before its claim until its end is reported, so heartbeats list it and a
stop finds it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from juqueue.broker.keys import Keys
from juqueue.broker.leases import Leases
from juqueue.definitions.models import ClusterSpec
from juqueue.events import REJECTED, Event
from juqueue.paths import WorkDir
from juqueue.settings import Settings
from juqueue.workers.attempt import LiveAttempt, run_claimed
from juqueue.workers.slots import JobResources, choose_slots, parse_cuda_visible_devices, parse_nvidia_smi_list

log = logging.getLogger(__name__)

EXIT_FOLLOW_UP_S = 2.5  # a heartbeat this long after each exit (the controller's settle time is 2 s)
CLAIM_RETRY_S = 90.0  # how long a claim waits out a broker outage (the embedded one restarts in seconds)


@dataclass
class NodeConfig:
    """What the controller wrote to nodes/<node>/node.json before starting the node."""

    node: str
    token: str
    namespace: str
    version: str
    cluster: ClusterSpec
    lease_ttl_s: float = Settings.lease_ttl_s  # the controller sends its own in node.json
    controller_silence_s: float = Settings.controller_silence_s
    max_event_stream: int = 1_000_000
    task_events: bool = False  # Celery task events (-E) for Flower; they cost CPU per run

    @classmethod
    def load(cls, path: Path) -> "NodeConfig":
        data = json.loads(path.read_text())
        data["cluster"] = ClusterSpec(**data["cluster"])
        return cls(**data)


class NodeRuntime:
    """The node's shared state; it is the `NodeSide` (`juqueue.workers.attempt`) of the attempts it starts."""

    def __init__(self, work: WorkDir, config: NodeConfig, client: redis.Redis) -> None:
        self.work = work
        self.config = config
        self.node = config.node
        self.keys = Keys(config.namespace)
        self.redis = client
        self.leases = Leases(client, self.keys)
        self.cluster = config.cluster
        self._lock = threading.Lock()
        self.live: dict[str, LiveAttempt] = {}
        self.draining = False
        self.stopping = False
        self.hb_soon = threading.Event()  # the control loop sends a heartbeat at once
        self.hb_follow_up: float | None = None  # monotonic time of a heartbeat asked for after an exit
        job_cuda_env = os.environ.get("CUDA_VISIBLE_DEVICES")
        self._listed_gpus: list[str] | None = None  # `nvidia-smi -L`, asked once when needed
        self._gpu_lock = threading.Lock()
        self.resources = JobResources(
            allowed_cpus=sorted(os.sched_getaffinity(0)), cuda_env=job_cuda_env,
            job_devices=parse_cuda_visible_devices(job_cuda_env), listed_devices=self._listed_devices,
        )
        self.base_env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "JUQUEUE_NODE"))}
        self.last_busy = time.monotonic()  # when the last attempt ended (or the worker started)
        self._started_at = time.monotonic()

    # ---- events -------------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        event.node = self.node
        event.ts = event.ts or time.time()
        self.redis.xadd(self.keys.events, event.encode(), maxlen=self.config.max_event_stream, approximate=True)

    def release_and_emit(self, global_id: str, attempt: int, event: Event) -> None:
        """Release the attempt's lease and send its event in one round trip (RedisError when
        the broker is away)."""
        pipe = self.redis.pipeline(transaction=False)
        self.leases.release(global_id, attempt, self.node, client=pipe)
        pipe.xadd(self.keys.events, event.encode(), maxlen=self.config.max_event_stream, approximate=True)
        pipe.execute()

    def heartbeat_after_exit(self) -> None:
        """Ask the control loop for a heartbeat at once after an exit: with it the controller can
        call the exit final (before Celery may have handled a TERM that reached it too)."""
        self.hb_soon.set()
        # and one more once the controller may call the exit final (on SLURM a heartbeat taken
        # 2 s after it), so the slot is free then, not only at the next regular heartbeat
        self.hb_follow_up = time.monotonic() + EXIT_FOLLOW_UP_S

    # ---- the table ----------------------------------------------------------------------
    def listed(self) -> tuple[list[tuple[str, int]], float]:
        """The attempts held here and when that list was taken (attempts registered after it
        are not in it), for a heartbeat."""
        with self._lock:
            items = [(a.global_id, a.attempt) for a in self.live.values()]
            read_at = time.time()  # attempts started after this are not in `items`
        return items, read_at

    def checkpoints(self) -> list[str]:
        """The last checkpoint of every attempt held here that reported one (`Event.checkpoints`):
        one stat per attempt, outside the lock."""
        with self._lock:
            live = list(self.live.values())
        return [item for item in (a.checkpoint() for a in live) if item]

    def busy(self) -> bool:
        with self._lock:
            return bool(self.live)

    # ---- the task -----------------------------------------------------------------------
    @property
    def _used_slots(self) -> set[int]:
        return {i for live in self.live.values() for i in live.slots}

    def run_attempt(self, global_id: str, attempt: int, slots: list[int] | None = None) -> None:
        """Claim, start, wait, report. Runs in one of the pool's threads. `slots`: the indices
        the controller assigned; the attempt uses exactly those, and an index already in use
        here means a duplicate (it is refused, never run). None (an older controller's message):
        the first free slot."""
        if self.draining or self.stopping:
            self.emit(Event(type=REJECTED, global_id=global_id, attempt=attempt, reason="node draining"))
            return
        with self._lock:
            if global_id in self.live:
                log.warning("dropping a second message for %s attempt %s: it is already running here", global_id, attempt)
                return
            chosen, refusal = choose_slots(slots, self._used_slots, self.cluster.num_slots)
            if refusal is None:
                # Registered before the claim, so a stop that follows a successful claim finds it.
                live = LiveAttempt(global_id, attempt, chosen)
                self.live[global_id] = live
        if refusal is not None:
            log.warning("refusing %s attempt %s: %s", global_id, attempt, refusal)
            self.emit(Event(type=REJECTED, global_id=global_id, attempt=attempt, reason=refusal))
            return
        try:
            spec_json = self._claim(global_id, attempt)
        except BaseException:
            with self._lock:
                self.live.pop(global_id, None)
            raise
        if not spec_json:
            with self._lock:
                self.live.pop(global_id, None)
            if spec_json is None:
                log.warning("dropping %s attempt %s: not the run's current attempt", global_id, attempt)
            else:
                self.leases.release(global_id, attempt, self.node)
                self.emit(Event(type=REJECTED, global_id=global_id, attempt=attempt, reason="its spec is missing"))
            return
        try:
            run_claimed(self, live, json.loads(spec_json))
        finally:
            with self._lock:
                self.live.pop(global_id, None)
                self.last_busy = time.monotonic()

    def _claim(self, global_id: str, attempt: int) -> str | None:
        """The claim, waited out through a broker outage (the claim is idempotent for this node, so a
        retry after a lost reply is safe). While it waits the attempt is listed in heartbeats, so the
        controller does not take it for lost; after CLAIM_RETRY_S it is given up (None), and the
        controller requeues it once no heartbeat lists it."""
        deadline = time.monotonic() + CLAIM_RETRY_S
        while True:
            try:
                return self.leases.claim(global_id, attempt, self.node, self.config.lease_ttl_s)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if time.monotonic() > deadline or self.stopping:
                    log.warning("giving up %s attempt %s: the broker did not answer its claim (%s)", global_id, attempt, exc)
                    return None
                time.sleep(1.0)

    def _listed_devices(self) -> list[str]:
        """The GPUs `nvidia-smi -L` lists (none when it is missing or fails); asked once."""
        with self._gpu_lock:
            if self._listed_gpus is None:
                try:
                    out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30,
                                         stdin=subprocess.DEVNULL)
                    self._listed_gpus = parse_nvidia_smi_list(out.stdout) if out.returncode == 0 else []
                except (OSError, subprocess.SubprocessError) as exc:
                    log.info("nvidia-smi -L: %s", exc)
                    self._listed_gpus = []
            return self._listed_gpus

    # ---- stopping runs ------------------------------------------------------------------
    def stop_attempt(self, global_id: str, attempt: int | None, reason: str, grace_s: float) -> None:
        """Stop the attempt if it is still the one held here (any, when `attempt` is None)."""
        with self._lock:
            live = self.live.get(global_id)
        if live is None or (attempt is not None and live.attempt != attempt):
            return
        live.stop(reason, grace_s)

    def stop_all(self, reason: str, grace_s: float | None = None) -> None:
        grace = self.cluster.grace_period if grace_s is None else grace_s
        with self._lock:
            targets = list(self.live.values())
        for live in targets:
            self.stop_attempt(live.global_id, live.attempt, reason, grace)

    def begin_shutdown(self, reason: str) -> None:
        """The node is going away: take nothing new, stop what runs (runs are interrupted)."""
        if self.stopping:
            return
        log.info("node %s shutting down: %s", self.node, reason)
        self.stopping = True
        self.draining = True
        self.stop_all(reason)
        self.hb_soon.set()
