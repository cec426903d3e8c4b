"""Entry point of one node: `python -m juqueue.workers.node --work-dir W --node N --cluster C`.

Started by the local backend as a process group, or by the SLURM job script. It reads
everything it needs from the work dir (node.json, the 0600 broker URL file), so no
secret ever appears in its arguments.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import NoReturn

import redis
from celery import signals

from juqueue.broker.client import make_redis
from juqueue.broker.keys import Keys
from juqueue.celery_app import RUN_TASK, make_celery_app
from juqueue.events import NODE_FAILED, Event
from juqueue.paths import WorkDir, write_atomic
from juqueue.version import __version__
from juqueue.workers.control import NodeControl
from juqueue.workers.runtime import NodeConfig, NodeRuntime

log = logging.getLogger("juqueue.workers.node")

BROKER_GIVE_UP_S = float(os.environ.get("JUQUEUE_BROKER_GIVE_UP_S", "60"))  # a job that cannot work must not sit on a node


def _fail(work: WorkDir, node: str, reason: str, code: int) -> NoReturn:
    """Leave the reason where the controller finds it, then end the job."""
    log.error("node %s cannot work: %s", node, reason)
    write_atomic(work.node_dir(node) / "failure", reason + "\n")
    sys.exit(code)


def _connect(url: str, work: WorkDir, node: str) -> redis.Redis:
    deadline = time.monotonic() + BROKER_GIVE_UP_S
    last_error = ""
    while time.monotonic() < deadline:
        client = make_redis(url, socket_timeout=10)
        try:
            client.ping()
            return client
        except redis.RedisError as exc:
            last_error = str(exc)
            time.sleep(2)
    _fail(work, node, f"could not reach the broker for {BROKER_GIVE_UP_S:.0f} s: {last_error}", 4)


def reuse_kombu_clients() -> None:
    """kombu's Redis transport builds a new redis-py client for every ack (and publish);
    at hundreds of runs a second that is a tenth of a worker's CPU. A client is thread-safe
    and holds no state beyond its pool, so one per channel and pool serves them all."""
    from kombu.transport import redis as kombu_redis

    original = kombu_redis.Channel._create_client
    if getattr(original, "_juqueue_cached", False):
        return

    def _create_client(self, asynchronous=False):  # type: ignore[no-untyped-def]
        if asynchronous:
            return original(self, asynchronous=True)
        pool = self.pool
        cached = self.__dict__.get("_juqueue_client")
        if cached is None or cached[0] is not pool:
            cached = (pool, original(self))
            self.__dict__["_juqueue_client"] = cached
        return cached[1]

    _create_client._juqueue_cached = True  # type: ignore[attr-defined]
    kombu_redis.Channel._create_client = _create_client


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="juqueue.workers.node")
    parser.add_argument("--work-dir", required=True)
    parser.add_argument("--node", required=True)
    parser.add_argument("--cluster", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("JUQUEUE_WORKER_LOGLEVEL", "WARNING"), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    work = WorkDir(Path(args.work_dir).resolve())
    node_dir = work.node_dir(args.node)
    config = NodeConfig.load(node_dir / "node.json")
    url = work.broker_url_file.read_text().strip()
    client = _connect(url, work, args.node)
    if config.version != __version__:
        reason = f"worker runs JuQueue {__version__}, the controller {config.version}: refusing to start"
        try:
            client.xadd(Keys(config.namespace).events, Event(type=NODE_FAILED, node=args.node, ts=time.time(), reason=reason).encode())
        except redis.RedisError:
            pass
        _fail(work, args.node, reason, 3)

    runtime = NodeRuntime(work, config, client)
    control = NodeControl(runtime)
    reuse_kombu_clients()
    app = make_celery_app(url)
    # No ack emulation on the node's queue: kombu would keep each delivered message in an
    # `unacked` hash until its ack (two Redis transactions per run) only to restore it after
    # the 30-day visibility timeout. A message lost with a worker is found by heartbeats
    # (`EventIngest._settle_lost_messages`); prefetched ones still go back at a warm shutdown.
    app.conf.broker_transport_options = {**app.conf.broker_transport_options, "ack_emulation": False}

    @app.task(name=RUN_TASK, ignore_result=True)
    def run_attempt(global_id: str, attempt: int, slots: list[int] | None = None) -> None:
        runtime.run_attempt(global_id, attempt, slots)

    @signals.worker_shutting_down.connect(weak=False)
    def _on_shutdown(**_kwargs: object) -> None:
        runtime.begin_shutdown("worker shutting down")

    threading.Thread(target=control.control_loop, name="juqueue-control", daemon=True).start()
    write_atomic(node_dir / "worker.pid", f"{os.getpid()}\n")
    app.worker_main(
        [
            "worker",
            "-P", "threads",
            "-c", str(config.cluster.num_slots),
            "-Q", runtime.keys.node_queue(args.node),
            "-n", f"{args.node}@%h",
            *(["-E"] if config.task_events else []),
            "--without-gossip",
            "--without-mingle",
            "-l", os.environ.get("JUQUEUE_CELERY_LOGLEVEL", "WARNING"),
        ]
    )


if __name__ == "__main__":
    main()
