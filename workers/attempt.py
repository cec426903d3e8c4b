"""Everything one attempt's process goes through: its start as the leader of its own process
group (without a Python process per run), the wait, the stop (SIGTERM, SIGKILL after the
grace), the kill of what is left in its group, and the report of its end.

The report's order is what the controller relies on: the exit file first (the result even
when the broker is away), then the lease released and `exited` sent in one round trip, then a
heartbeat at once and another `EXIT_FOLLOW_UP_S` later (`NodeSide.heartbeat_after_exit`).
Stopping a group by its leader's pid and start time lives in `juqueue.process_group`, shared
with the controller side.
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
from typing import Protocol

import redis

from juqueue.definitions.models import ClusterSpec
from juqueue.events import EXITED, REJECTED, STARTED, Event, checkpoint_entry
from juqueue.paths import WorkDir
from juqueue.process_group import kill_group, process_start_time, signal_group
from juqueue.workers import command
from juqueue.workers.slots import JobResources, slot_env

log = logging.getLogger(__name__)


class WorkDirError(OSError):
    """The work dir refused a write the attempt needs (its logs): not the command's failure."""


def start_run(argv: list[str], env: dict[str, str], cwd: Path, stdout: Path, stderr: Path, cpus: list[int] | None) -> subprocess.Popen:
    """Start the run as the leader of a new session (own process group).

    Raises WorkDirError when its log files cannot be made, OSError when the command itself
    cannot start (a missing binary)."""
    out = None
    try:
        stdout.parent.mkdir(parents=True, exist_ok=True)
        out = open(stdout, "ab")
        err = open(stderr, "ab")
    except OSError as exc:
        if out is not None:
            out.close()
        raise WorkDirError(exc.errno, f"work dir: {exc}") from exc
    with out, err:
        preexec = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
        return subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            preexec_fn=preexec,
            close_fds=True,
        )


def shell_exit_code(returncode: int) -> int:
    """Exit code as a shell reports it: 128+N for death by signal N."""
    return 128 - returncode if returncode < 0 else returncode


@dataclass
class LiveAttempt:
    """An attempt this worker holds, from before its claim until its end is reported."""

    global_id: str
    attempt: int
    slots: tuple[int, ...]  # the slot indices the controller assigned (JUQUEUE_SLOT is the first)
    proc: object = None
    pstart: int = 0
    started_at: float | None = None  # when its process started (also in the exit file)
    stop_reason: str | None = None
    checkpoint_file: str | None = None  # $JUQUEUE_CHECKPOINT_FILE: the run touches it when it checkpointed
    kill_timer: threading.Timer | None = field(default=None, repr=False)

    def checkpoint(self) -> str | None:
        """`Event.checkpoints`' item for this attempt: its checkpoint file's mtime; None while
        the run has not touched it (or the attempt has no such file)."""
        if not self.checkpoint_file:
            return None
        try:
            mtime = os.stat(self.checkpoint_file).st_mtime
        except OSError:
            return None
        return checkpoint_entry(self.global_id, self.attempt, mtime)

    def signal(self, sig: int) -> None:
        """Signal the run's whole group (nothing before its process exists)."""
        if self.proc is not None:
            signal_group(self.proc.pid, self.pstart, sig)

    def stop(self, reason: str, grace_s: float) -> None:
        """SIGTERM now (runs checkpoint on it), SIGKILL after the grace. The reason is kept first,
        so a stop that arrives while the process starts is carried out once it exists."""
        self.stop_reason = reason
        self.signal(signal.SIGTERM)
        timer = threading.Timer(grace_s, self.signal, args=(signal.SIGKILL,))
        timer.daemon = True
        self.kill_timer = timer
        timer.start()


class NodeSide(Protocol):
    """What an attempt needs of its node's worker (`NodeRuntime`)."""

    node: str
    work: WorkDir
    cluster: ClusterSpec
    resources: JobResources
    base_env: dict[str, str]
    draining: bool
    stopping: bool

    def emit(self, event: Event) -> None: ...

    def release_and_emit(self, global_id: str, attempt: int, event: Event) -> None: ...

    def heartbeat_after_exit(self) -> None: ...


def run_claimed(node: NodeSide, live: LiveAttempt, spec: dict) -> None:
    """Start the claimed attempt, wait for it, report its end (or give it back when it cannot
    start here for a reason that is not its command's)."""
    try:
        os.makedirs(spec["log_dir"], exist_ok=True)  # the run dir too
    except OSError as exc:
        give_back(node, live, f"work dir: {exc}", work_dir=True)
        return
    try:
        extra, cpus = slot_env(spec, live.slots, node.node, node.cluster, node.resources)
    except ValueError as exc:  # the node lacks the devices the run needs
        give_back(node, live, f"no CUDA devices for this run: {exc}", no_devices=True)
        return
    env = command.build_env(node.base_env, spec, extra)
    live.checkpoint_file = spec.get("checkpoint_file")
    try:
        proc = start_run(
            command.build_argv(spec, env), env, Path(spec["run_dir"]), Path(spec["stdout"]), Path(spec["stderr"]), cpus
        )
    except WorkDirError as exc:
        give_back(node, live, str(exc), work_dir=True)
        return
    except OSError as exc:
        # The command could not start at all (missing binary): the command's own failure.
        try:
            with open(spec["stderr"], "a") as err:
                err.write(f"juqueue: could not start {spec['cmd'][0]!r}: {exc}\n")
        except OSError as log_exc:
            give_back(node, live, f"work dir: {log_exc}", work_dir=True)
            return
        finish(node, live, spec, 127, time.time())
        return
    live.proc = proc
    live.pstart = process_start_time(proc.pid) or 0
    live.started_at = time.time()
    node.emit(
        Event(type=STARTED, global_id=live.global_id, attempt=live.attempt, slot=live.slots[0], pid=proc.pid, pstart=live.pstart,
              ts=live.started_at)
    )
    if live.stop_reason:  # a stop arrived while starting
        live.signal(signal.SIGTERM)
    returncode = proc.wait()
    if live.kill_timer is not None:
        live.kill_timer.cancel()
    # Anything left in the group (a grandchild) dies with the attempt.
    kill_group(proc.pid, None)
    finish(node, live, spec, shell_exit_code(returncode), time.time())


def give_back(node: NodeSide, live: LiveAttempt, reason: str, work_dir: bool = False, no_devices: bool = False) -> None:
    """The claimed attempt cannot start here for a reason that is not its command's: the
    controller requeues it without spending a retry (and learns about the node)."""
    log.warning("%s attempt %s not started: %s", live.global_id, live.attempt, reason)
    try:
        node.release_and_emit(live.global_id, live.attempt, Event(
            type=REJECTED, global_id=live.global_id, attempt=live.attempt, reason=reason,
            work_dir=work_dir, no_devices=no_devices, node=node.node, ts=time.time()))
    except redis.RedisError as exc:
        log.warning("could not report %s: %s", live.global_id, exc)


def finish(node: NodeSide, live: LiveAttempt, spec: dict, exit_code: int, ended_at: float) -> None:
    """Report the attempt's end: exit file, then release + `exited`, then heartbeats."""
    # A job signalled to end (its stop file) interrupts the run, even before Celery saw the TERM.
    interrupted = bool(live.stop_reason) or node.stopping or (node.work.node_dir(node.node) / "stopping").exists()
    reason = live.stop_reason or ""
    work_dir = False
    # One small write into the log dir the attempt already has; a reader that finds it
    # half-written (a crash mid-write) sees no exit, which is what happened.
    try:
        with open(spec["exit_file"], "w") as fh:
            fh.write(json.dumps({"exit_code": exit_code, "ended_at": ended_at, "node": node.node,
                                 "attempt": live.attempt, "interrupted": interrupted, "started_at": live.started_at}))
    except OSError as exc:
        # An end that cannot be recorded is not a result: the run goes again.
        interrupted, work_dir, reason = True, True, f"work dir: could not record the end: {exc}"
    if not interrupted and exit_code == command.VENV_EXIT_CODE and spec.get("venv"):
        reason = command.venv_failure(Path(spec["stderr"])) or ""
    checkpoint = live.checkpoint()  # (one saved on SIGTERM comes after the last heartbeat)
    event = Event(
        type=EXITED, global_id=live.global_id, attempt=live.attempt, exit_code=exit_code,
        interrupted=interrupted, ts=ended_at, reason=reason, work_dir=work_dir,
        stopping=node.stopping, draining=node.draining, node=node.node, checkpoints=[checkpoint] if checkpoint else [],
    )
    try:
        node.release_and_emit(live.global_id, live.attempt, event)
    except redis.RedisError as exc:  # the exit file carries the result
        log.warning("could not report the exit of %s: %s", live.global_id, exc)
    node.heartbeat_after_exit()
