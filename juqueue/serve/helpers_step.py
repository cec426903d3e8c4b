"""The helpers step: Celery beat (the controller's periodic tick) and Flower as child
processes, and a supervisor thread that keeps the broker and beat alive, reaps orphans, and
keeps the embedded broker's ledger of live nodes and its watcher current."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading

from juqueue.broker.watcher import ensure_watcher
from juqueue.paths import WorkDir
from juqueue.process_reaper import reap_orphans
from juqueue.serve.broker_step import refresh_ledger
from juqueue.serve.context import ServeContext

log = logging.getLogger("juqueue.server")

SUPERVISE_EVERY_S = 5.0


def _die_with_parent() -> None:
    """Beat and Flower serve this `serve` only: they end when it dies, even by SIGKILL."""
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_PDEATHSIG = 1
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def start_beat(work: WorkDir, tick_queue: str, tick_interval: float) -> subprocess.Popen:
    """Celery beat publishes the controller's periodic tick; it dies with this `serve`."""
    env = dict(os.environ, JUQUEUE_WORK_DIR=str(work.root), JUQUEUE_TICK_INTERVAL=str(tick_interval), JUQUEUE_TICK_QUEUE=tick_queue)
    log_file = open(work.beat_log, "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "juqueue.controller.beat", "beat", "-s", str(work.beat_schedule),
         "--pidfile=", "-l", "WARNING"],
        env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=_die_with_parent,
    )


def start_flower(work: WorkDir, port: int, token: str) -> subprocess.Popen:
    """Flower shows task arguments: it listens on loopback and asks for a password (the
    dashboard token), handed over through its environment, never its arguments."""
    env = dict(os.environ, JUQUEUE_WORK_DIR=str(work.root), FLOWER_BASIC_AUTH=f"juqueue:{token}")
    log_file = open(work.flower_log, "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "juqueue.workers.app", "flower", "--address=127.0.0.1", f"--port={port}",
         "--url_prefix=flower", "--purge_offline_workers=300"],
        env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=_die_with_parent,
    )


class HelpersStep:
    """Reads opts.tick_interval and opts.flower_port (None: no Flower). Stop ends the
    supervisor first (so nothing is restarted), then beat and Flower (SIGTERM, SIGKILL after 10 s)."""

    name = "helpers"
    requires: tuple[str, ...] = ("broker", "controller")

    def __init__(self) -> None:
        self.beat: subprocess.Popen | None = None
        self.flower: subprocess.Popen | None = None
        self._stop_event = threading.Event()
        self._tick_queue = ""
        self._tick_interval = 2.0

    def start(self, ctx: ServeContext) -> None:
        assert ctx.controller is not None
        self._tick_queue, self._tick_interval = ctx.controller.keys.tick_queue, ctx.opts.tick_interval
        self.beat = start_beat(ctx.work, self._tick_queue, self._tick_interval)
        if ctx.opts.flower_port:
            self.flower = start_flower(ctx.work, ctx.opts.flower_port, ctx.token)
        threading.Thread(target=self._supervise, args=(ctx,), name="juqueue-supervisor", daemon=True).start()

    def _supervise(self, ctx: ServeContext) -> None:
        """Keep the broker and beat alive, and reap orphans reparented to us."""
        while not self._stop_event.wait(SUPERVISE_EVERY_S):
            try:
                if ctx.broker is not None and ctx.broker.ensure_running():
                    log.warning("embedded broker restarted")
                if self.beat is not None and self.beat.poll() is not None:
                    log.warning("celery beat exited (%s); restarting it", self.beat.returncode)
                    self.beat = start_beat(ctx.work, self._tick_queue, self._tick_interval)
                reap_orphans()
                if ctx.broker is not None and not self._stop_event.is_set():  # the embedded broker's ledger and watcher
                    refresh_ledger(ctx)
                    ensure_watcher(ctx.work)
            except Exception:
                log.exception("supervisor check failed")

    def stop(self, ctx: ServeContext) -> None:
        self._stop_event.set()
        for helper in (self.beat, self.flower):
            if helper is not None and helper.poll() is None:
                helper.terminate()
                try:
                    helper.wait(10)
                except subprocess.TimeoutExpired:
                    helper.kill()
