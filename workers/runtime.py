"""What one node's worker keeps: its slots, its live attempts, leases and heartbeats.

One control thread per worker renews every lease in one round trip, sends the node's
heartbeat, and carries out control commands (stop an attempt, drain, shut down); the
run itself needs no Python process of its own.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from juqueue.broker.keys import Keys
from juqueue.broker.leases import Leases
from juqueue.definitions.models import ClusterSpec
from juqueue.events import EXITED, HEARTBEAT, REJECTED, STARTED, Event
from juqueue.paths import WorkDir, split_global_id
from juqueue.policy.slots import parse_cuda_visible_devices, parse_nvidia_smi_list, slot_cpus, slot_cuda_devices
from juqueue.process_group import kill_group, process_start_time, signal_group
from juqueue.workers import process

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
    lease_ttl_s: float = 120.0
    controller_silence_s: float = 600.0
    max_event_stream: int = 1_000_000
    task_events: bool = False  # Celery task events (-E) for Flower; they cost CPU per run

    @classmethod
    def load(cls, path: Path) -> "NodeConfig":
        data = json.loads(path.read_text())
        data["cluster"] = ClusterSpec(**data["cluster"])
        return cls(**data)


@dataclass
class LiveAttempt:
    global_id: str
    attempt: int
    slots: tuple[int, ...]  # the slot indices the controller assigned (JUQUEUE_SLOT is the first)
    proc: object = None
    pstart: int = 0
    stop_reason: str | None = None
    kill_timer: threading.Timer | None = field(default=None, repr=False)


class NodeRuntime:
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
        self._hb_soon = threading.Event()
        self._hb_follow_up: float | None = None  # monotonic time of a heartbeat asked for after an exit
        self._stop_loop = threading.Event()
        self._job_cuda_env = os.environ.get("CUDA_VISIBLE_DEVICES")
        self._job_devices = parse_cuda_visible_devices(self._job_cuda_env)
        self._listed_gpus: list[str] | None = None  # `nvidia-smi -L`, asked once when needed
        self._gpu_lock = threading.Lock()
        self._allowed_cpus = sorted(os.sched_getaffinity(0))
        self._base_env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "JUQUEUE_NODE"))}
        self._last_busy = time.monotonic()
        self._started_at = time.monotonic()

    # ---- events -------------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        event.node = self.node
        event.ts = event.ts or time.time()
        self.redis.xadd(self.keys.events, event.encode(), maxlen=self.config.max_event_stream, approximate=True)

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
            used = self._used_slots
            refusal = None
            if slots is None:
                free = [i for i in range(self.cluster.num_slots) if i not in used]
                chosen = tuple(free[:1])
                if not chosen:
                    refusal = "no free slot"
            else:
                chosen = tuple(int(i) for i in slots)
                busy = sorted(set(chosen) & used)
                outside = [i for i in chosen if not 0 <= i < self.cluster.num_slots]
                if busy:
                    refusal = f"slots {','.join(map(str, busy))} already in use here (a duplicate placement)"
                elif outside or not chosen or len(set(chosen)) != len(chosen):
                    refusal = f"slots {list(chosen)} are not distinct slots of this node (0..{self.cluster.num_slots - 1})"
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
            self._run(live, json.loads(spec_json))
        finally:
            with self._lock:
                self.live.pop(global_id, None)
                self._last_busy = time.monotonic()

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

    def _slot_device(self, slot: int) -> str:
        """Without cuda_devices_per_slot: slot i gets the i-th of the job's own devices
        (CUDA_VISIBLE_DEVICES; when unset, what nvidia-smi lists). ValueError when there is none."""
        if self._job_cuda_env is not None:
            devices, where = self._job_devices, "CUDA_VISIBLE_DEVICES"
        else:
            devices, where = self._listed_devices(), "CUDA_VISIBLE_DEVICES is unset; nvidia-smi -L"
        try:
            return slot_cuda_devices(devices, 1, slot)[0]
        except ValueError as exc:
            raise ValueError(f"{exc} ({where})") from None

    def _slot_env(self, spec: dict, slots: tuple[int, ...] | int) -> tuple[dict[str, str], list[int] | None]:
        """The run's environment for its slots: the CPU and GPU blocks of every one of them."""
        if isinstance(slots, int):
            slots = (slots,)
        experiment, run_id = split_global_id(spec["global_id"])
        extra = {
            "RUN_ID": run_id,  # the original's names: the run's own id and its experiment
            "EXPERIMENT_ID": experiment,
            "JUQUEUE_RUN_ID": spec["global_id"],
            "JUQUEUE_ATTEMPT": str(spec["attempt"]),
            "JUQUEUE_RUN_DIR": spec["run_dir"],
            "JUQUEUE_SLOT": str(slots[0]),
            "JUQUEUE_SLOTS": ",".join(map(str, slots)),
            "JUQUEUE_NODE": self.node,
        }
        cpus = None
        if self.cluster.cpus_per_slot:
            cpus = sorted({c for slot in slots for c in slot_cpus(self._allowed_cpus, self.cluster.cpus_per_slot, slot)})
            extra["OMP_NUM_THREADS"] = str(self.cluster.cpus_per_slot * len(slots))
        if spec.get("cuda") and self.cluster.cuda_devices_per_slot:
            extra["CUDA_VISIBLE_DEVICES"] = ",".join(
                d for slot in slots for d in slot_cuda_devices(self._job_devices, self.cluster.cuda_devices_per_slot, slot)
            )
        elif spec.get("cuda"):
            extra["CUDA_VISIBLE_DEVICES"] = ",".join(self._slot_device(slot) for slot in slots)
        return extra, cpus

    def _run(self, live: LiveAttempt, spec: dict) -> None:
        try:
            os.makedirs(spec["log_dir"], exist_ok=True)  # the run dir too
        except OSError as exc:
            self._give_back(live, f"work dir: {exc}", work_dir=True)
            return
        try:
            extra, cpus = self._slot_env(spec, live.slots)
        except ValueError as exc:  # the node lacks the devices the run needs
            self._give_back(live, f"no CUDA devices for this run: {exc}", no_devices=True)
            return
        env = process.build_env(self._base_env, spec, extra)
        try:
            proc = process.start_run(
                process.build_argv(spec, env), env, Path(spec["run_dir"]), Path(spec["stdout"]), Path(spec["stderr"]), cpus
            )
        except process.WorkDirError as exc:
            self._give_back(live, str(exc), work_dir=True)
            return
        except OSError as exc:
            # The command could not start at all (missing binary): the command's own failure.
            try:
                with open(spec["stderr"], "a") as err:
                    err.write(f"juqueue: could not start {spec['cmd'][0]!r}: {exc}\n")
            except OSError as log_exc:
                self._give_back(live, f"work dir: {log_exc}", work_dir=True)
                return
            self._finish(live, spec, 127, time.time())
            return
        live.proc = proc
        live.pstart = process_start_time(proc.pid) or 0
        self.emit(
            Event(type=STARTED, global_id=live.global_id, attempt=live.attempt, slot=live.slots[0], pid=proc.pid, pstart=live.pstart)
        )
        if live.stop_reason:  # a stop arrived while starting
            self._signal(live, signal.SIGTERM)
        returncode = proc.wait()
        if live.kill_timer is not None:
            live.kill_timer.cancel()
        # Anything left in the group (a grandchild) dies with the attempt.
        kill_group(proc.pid, None)
        self._finish(live, spec, process.shell_exit_code(returncode), time.time())

    def _give_back(self, live: LiveAttempt, reason: str, work_dir: bool = False, no_devices: bool = False) -> None:
        """The claimed attempt cannot start here for a reason that is not its command's: the
        controller requeues it without spending a retry (and learns about the node)."""
        log.warning("%s attempt %s not started: %s", live.global_id, live.attempt, reason)
        try:
            pipe = self.redis.pipeline(transaction=False)
            self.leases.release(live.global_id, live.attempt, self.node, client=pipe)
            pipe.xadd(self.keys.events, Event(type=REJECTED, global_id=live.global_id, attempt=live.attempt, reason=reason,
                                              work_dir=work_dir, no_devices=no_devices, node=self.node, ts=time.time()).encode(),
                      maxlen=self.config.max_event_stream, approximate=True)
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("could not report %s: %s", live.global_id, exc)

    def _finish(self, live: LiveAttempt, spec: dict, exit_code: int, ended_at: float) -> None:
        # A job signalled to end (its stop file) interrupts the run, even before Celery saw the TERM.
        interrupted = bool(live.stop_reason) or self.stopping or (self.work.node_dir(self.node) / "stopping").exists()
        reason = live.stop_reason or ""
        work_dir = False
        # One small write into the log dir the attempt already has; a reader that finds it
        # half-written (a crash mid-write) sees no exit, which is what happened.
        try:
            with open(spec["exit_file"], "w") as fh:
                fh.write(json.dumps({"exit_code": exit_code, "ended_at": ended_at, "node": self.node,
                                     "attempt": live.attempt, "interrupted": interrupted}))
        except OSError as exc:
            # An end that cannot be recorded is not a result: the run goes again.
            interrupted, work_dir, reason = True, True, f"work dir: could not record the end: {exc}"
        if not interrupted and exit_code == process.VENV_EXIT_CODE and spec.get("venv"):
            reason = process.venv_failure(Path(spec["stderr"])) or ""
        event = Event(
            type=EXITED, global_id=live.global_id, attempt=live.attempt, exit_code=exit_code,
            interrupted=interrupted, ts=ended_at, reason=reason, work_dir=work_dir,
            stopping=self.stopping, draining=self.draining, node=self.node,
        )
        try:
            pipe = self.redis.pipeline(transaction=False)
            self.leases.release(live.global_id, live.attempt, self.node, client=pipe)
            pipe.xadd(self.keys.events, event.encode(), maxlen=self.config.max_event_stream, approximate=True)
            pipe.execute()
        except redis.RedisError as exc:  # the exit file carries the result
            log.warning("could not report the exit of %s: %s", live.global_id, exc)
        self._hb_soon.set()
        # and one more once the controller may call the exit final (on SLURM a heartbeat taken
        # 2 s after it), so the slot is free then, not only at the next regular heartbeat
        self._hb_follow_up = time.monotonic() + EXIT_FOLLOW_UP_S

    # ---- stopping runs ------------------------------------------------------------------
    def _signal(self, live: LiveAttempt, sig: int) -> None:
        if live.proc is not None:
            signal_group(live.proc.pid, live.pstart, sig)

    def stop_attempt(self, global_id: str, attempt: int | None, reason: str, grace_s: float) -> None:
        with self._lock:
            live = self.live.get(global_id)
        if live is None or (attempt is not None and live.attempt != attempt):
            return
        live.stop_reason = reason
        self._signal(live, signal.SIGTERM)
        timer = threading.Timer(grace_s, self._signal, args=(live, signal.SIGKILL))
        timer.daemon = True
        live.kill_timer = timer
        timer.start()

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
        self._hb_soon.set()

    # ---- control loop -------------------------------------------------------------------
    def handle_control(self, command: dict) -> None:
        op = command.get("op")
        if op == "stop":
            self.stop_attempt(command["global_id"], command.get("attempt"), command.get("reason", "stop"), float(command.get("grace", self.cluster.grace_period)))
        elif op == "drain":
            self.draining = True
            self._hb_soon.set()
        elif op == "shutdown":
            self.begin_shutdown(command.get("reason", "shutdown"))
            self._request_exit()
        else:
            log.warning("unknown control command %r", command)

    def _request_exit(self) -> None:
        """Warm-shut-down the Celery worker once runs are stopped."""

        def _wait_then_exit() -> None:
            while True:
                with self._lock:
                    if not self.live:
                        break
                time.sleep(0.1)
            self._stop_loop.set()
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=_wait_then_exit, daemon=True).start()

    def heartbeat(self) -> None:
        with self._lock:
            items = [(a.global_id, a.attempt) for a in self.live.values()]
            read_at = time.time()  # attempts started after this are not in `items`
        if items:
            results = self.leases.renew_many(items, self.node, self.config.lease_ttl_s)
            for (gid, attempt), result in results.items():
                if result == 0:
                    log.warning("lease of %s attempt %s names another attempt: stopping it", gid, attempt)
                    self.stop_attempt(gid, attempt, "fenced", 0.0)
        self.emit(
            Event(
                type=HEARTBEAT, ts=read_at, stopping=self.stopping, draining=self.draining,
                running=[f"{g}|{a}" for g, a in items], version=self.config.version,
            )
        )

    def _check_stop_file(self) -> None:
        """The job script got TERM (scancel, the job's end) and said so in a file: shut down now,
        without waiting for Celery's own handling of the signal."""
        if not self.stopping and (self.work.node_dir(self.node) / "stopping").exists():
            self.begin_shutdown("the job was signalled to end (TERM)")

    def _check_drain_file(self) -> None:
        if not self.draining and (self.work.node_dir(self.node) / "drain").exists():
            # The job's wall time is near: take nothing new, let runs checkpoint (SIGTERM, grace).
            log.info("drain file found: wall time is near; stopping runs so they resume elsewhere")
            self.draining = True
            self.stop_all("wall time near")
            self._hb_soon.set()

    def _controller_silent(self) -> bool:
        with self._lock:
            busy = bool(self.live)
        if busy:
            return False
        silence = time.monotonic() - self._last_busy
        if silence < self.config.controller_silence_s:
            return False
        return not self.redis.exists(self.keys.controller_alive)

    def control_loop(self) -> None:
        hb_interval = self.cluster.heartbeat_interval
        next_hb = 0.0
        last_ok = time.monotonic()
        margin = min(10.0, self.config.lease_ttl_s / 4)
        while not self._stop_loop.is_set():
            try:
                timeout = 0.25 if self._hb_soon.is_set() else 1.0
                item = self.redis.blpop([self.keys.node_control(self.node)], timeout=timeout)
                if item:
                    self.handle_control(json.loads(item[1]))
                self._check_stop_file()
                self._check_drain_file()
                now = time.monotonic()
                due = self._hb_follow_up
                if now >= next_hb or self._hb_soon.is_set() or (due is not None and now >= due):
                    self._hb_soon.clear()
                    if due is not None and due <= now and self._hb_follow_up == due:
                        self._hb_follow_up = None  # (a later exit's follow-up stays asked for)
                    self.heartbeat()
                    next_hb = now + hb_interval
                    if self._controller_silent():
                        self.begin_shutdown("controller silent and no run left")
                        self._request_exit()
                last_ok = time.monotonic()
            except redis.RedisError as exc:
                silent_for = time.monotonic() - last_ok
                log.warning("broker unreachable for %.0f s: %s", silent_for, exc)
                if silent_for > self.config.lease_ttl_s - margin and self.live:
                    # Self-fencing: the controller will give these runs to another node.
                    log.error("could not renew leases for %.0f s: killing my runs", silent_for)
                    self.stop_all("lease lost", 0.0)
                time.sleep(1.0)
