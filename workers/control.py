"""The node's control thread: control commands, heartbeats, stop and drain files, self-fencing.

One thread per worker. Each round it takes one command from the node's control list (one
handler per op, registered in `CONTROL_OPS`), reads the job script's stop and drain files, and
when a heartbeat is due renews every lease in one round trip and sends the heartbeat. A lease
that names another attempt stops that attempt at once; a broker unreachable for almost the
lease TTL kills every run here (self-fencing: the controller will give them to another node).
The runs themselves need no Python process of their own.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable

import redis

from juqueue.events import HEARTBEAT, Event
from juqueue.workers.runtime import NodeRuntime

log = logging.getLogger(__name__)

ControlHandler = Callable[["NodeControl", dict], None]
CONTROL_OPS: dict[str, ControlHandler] = {}  # op -> handler; `{"op": ...}` on nodes' control lists


def control_op(op: str) -> Callable[[ControlHandler], ControlHandler]:
    """Register the handler of one control op (the controller pushes `{"op": op, ...}`)."""

    def register(handler: ControlHandler) -> ControlHandler:
        CONTROL_OPS[op] = handler
        return handler

    return register


@control_op("stop")
def _stop(control: NodeControl, command: dict) -> None:
    """One attempt: SIGTERM, SIGKILL after the grace (the cluster's unless the command says)."""
    rt = control.runtime
    rt.stop_attempt(command["global_id"], command.get("attempt"), command.get("reason", "stop"),
                    float(command.get("grace", rt.cluster.grace_period)))


@control_op("drain")
def _drain(control: NodeControl, command: dict) -> None:
    """Take nothing new; what runs goes on."""
    control.runtime.draining = True
    control.runtime.hb_soon.set()


@control_op("shutdown")
def _shutdown(control: NodeControl, command: dict) -> None:
    """Stop every run, then end the worker (its job ends with it)."""
    control.runtime.begin_shutdown(command.get("reason", "shutdown"))
    control.request_exit()


class NodeControl:
    """The control loop of one node's worker, over its `NodeRuntime`."""

    def __init__(self, runtime: NodeRuntime) -> None:
        self.runtime = runtime
        self._stop_loop = threading.Event()

    def handle_control(self, command: dict) -> None:
        op = command.get("op")
        handler = CONTROL_OPS.get(op) if isinstance(op, str) else None
        if handler is None:
            log.warning("unknown control command %r", command)
            return
        handler(self, command)

    def request_exit(self) -> None:
        """Warm-shut-down the Celery worker once runs are stopped."""

        def _wait_then_exit() -> None:
            while self.runtime.busy():
                time.sleep(0.1)
            self._stop_loop.set()
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=_wait_then_exit, daemon=True).start()

    def heartbeat(self) -> None:
        """Renew the leases of the attempts held here, then say which they are."""
        rt = self.runtime
        items, read_at = rt.listed()
        if items:
            results = rt.leases.renew_many(items, rt.node, rt.config.lease_ttl_s)
            for (gid, attempt), result in results.items():
                if result == 0:
                    log.warning("lease of %s attempt %s names another attempt: stopping it", gid, attempt)
                    rt.stop_attempt(gid, attempt, "fenced", 0.0)
        rt.emit(
            Event(
                type=HEARTBEAT, ts=read_at, stopping=rt.stopping, draining=rt.draining,
                running=[f"{g}|{a}" for g, a in items], version=rt.config.version,
                checkpoints=rt.checkpoints(),
            )
        )

    def _check_stop_file(self) -> None:
        """The job script got TERM (scancel, the job's end) and said so in a file: shut down now,
        without waiting for Celery's own handling of the signal."""
        rt = self.runtime
        if not rt.stopping and (rt.work.node_dir(rt.node) / "stopping").exists():
            rt.begin_shutdown("the job was signalled to end (TERM)")

    def _check_drain_file(self) -> None:
        rt = self.runtime
        if not rt.draining and (rt.work.node_dir(rt.node) / "drain").exists():
            # The job's wall time is near: take nothing new, let runs checkpoint (SIGTERM, grace).
            log.info("drain file found: wall time is near; stopping runs so they resume elsewhere")
            rt.draining = True
            rt.stop_all("wall time near")
            rt.hb_soon.set()

    def _controller_silent(self) -> bool:
        rt = self.runtime
        if rt.busy():
            return False
        silence = time.monotonic() - rt.last_busy
        if silence < rt.config.controller_silence_s:
            return False
        return not rt.redis.exists(rt.keys.controller_alive)

    def control_loop(self) -> None:
        """Runs until the worker exits (the shutdown op, or the controller silent and no run left)."""
        rt = self.runtime
        hb_interval = rt.cluster.heartbeat_interval
        next_hb = 0.0
        last_ok = time.monotonic()
        margin = min(10.0, rt.config.lease_ttl_s / 4)
        while not self._stop_loop.is_set():
            try:
                timeout = 0.25 if rt.hb_soon.is_set() else 1.0
                item = rt.redis.blpop([rt.keys.node_control(rt.node)], timeout=timeout)
                if item:
                    self.handle_control(json.loads(item[1]))
                self._check_stop_file()
                self._check_drain_file()
                now = time.monotonic()
                due = rt.hb_follow_up
                if now >= next_hb or rt.hb_soon.is_set() or (due is not None and now >= due):
                    rt.hb_soon.clear()
                    if due is not None and due <= now and rt.hb_follow_up == due:
                        rt.hb_follow_up = None  # (a later exit's follow-up stays asked for)
                    self.heartbeat()
                    next_hb = now + hb_interval
                    if self._controller_silent():
                        rt.begin_shutdown("controller silent and no run left")
                        self.request_exit()
                last_ok = time.monotonic()
            except redis.RedisError as exc:
                silent_for = time.monotonic() - last_ok
                log.warning("broker unreachable for %.0f s: %s", silent_for, exc)
                if silent_for > rt.config.lease_ttl_s - margin and rt.live:
                    # Self-fencing: the controller will give these runs to another node.
                    log.error("could not renew leases for %.0f s: killing my runs", silent_for)
                    rt.stop_all("lease lost", 0.0)
                time.sleep(1.0)
