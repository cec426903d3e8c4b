"""Hands attempts to nodes: the fencing key, the spec (secrets stay out of messages) and
the Celery message, for a whole batch in one Redis pipeline."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass

import redis
from celery import Celery

from juqueue.broker.keys import Keys
from juqueue.broker.messages import TaskMessages
from juqueue.celery_app import RUN_TASK
from juqueue.definitions import placeholders
from juqueue.paths import WorkDir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Assignment:
    global_id: str
    experiment: str
    run_id: str
    attempt: int
    node: str
    spec_json: str
    slots: tuple[int, ...] = (0,)  # the slot indices of the node it holds (the message carries them)


def resolve_placeholders(value: str, work: WorkDir, experiment: str, run_id: str) -> str:
    """`{run_dir}`, `{log_dir}`, `{experiment_dir}`, `{work_dir}` and the forms naming another
    run or experiment (`juqueue/definitions/placeholders.py`)."""
    return placeholders.resolve(value, work, experiment, run_id)


class Publisher:
    def __init__(self, work: WorkDir, keys: Keys, client: redis.Redis, app: Celery) -> None:
        self.work = work
        self.keys = keys
        self.redis = client
        self.app = app
        self.messages = TaskMessages(app, RUN_TASK)

    def attempt_spec(self, a: Assignment) -> dict:
        spec = json.loads(a.spec_json)
        # The paths as WorkDir names them, joined once as text: this runs for every attempt.
        rd = str(self.work.run_dir(a.experiment, a.run_id))
        ld = os.path.join(rd, "logs")
        prefix = os.path.join(ld, f"attempt-{a.attempt}")
        executor = spec.get("executor") or {}

        def res(value: str) -> str:
            return resolve_placeholders(str(value), self.work, a.experiment, a.run_id)

        venv = executor.get("venv")
        return {
            "global_id": a.global_id,
            "attempt": a.attempt,
            "slots": list(a.slots),
            "cmd": [res(c) for c in spec["cmd"]],
            "env": {k: res(v) for k, v in (executor.get("env") or {}).items()},
            "python_search_path": [res(p) for p in executor.get("python_search_path") or []],
            "venv": res(venv) if venv else venv,
            "prepend_script": [res(line) for line in executor.get("prepend_script") or []],
            "cuda": bool(executor.get("cuda")),
            "run_dir": rd,
            "log_dir": ld,
            "stdout": prefix + ".out",
            "stderr": prefix + ".err",
            "exit_file": prefix + ".exit.json",
            "checkpoint_file": prefix + ".checkpoint",
        }

    def publish(self, assignments: list[Assignment]) -> None:
        """Fencing keys, specs and messages for a whole batch in one round trip.

        Every run's `current` key and spec are set (one MSET) before any message is pushed
        (one LPUSH per node, in placement order), so a worker can never see a message it
        cannot claim.
        """
        if not assignments:
            return
        keys: dict[str, str] = {}
        queues: dict[str, list[str]] = {}
        for a in assignments:
            keys[self.keys.current_attempt(a.global_id)] = str(a.attempt)
            keys[self.keys.spec(a.global_id)] = json.dumps(self.attempt_spec(a))
            queue = self.keys.node_queue(a.node)
            queues.setdefault(queue, []).append(
                self.messages.build(f"{a.global_id}:{a.attempt}", [a.global_id, a.attempt, list(a.slots)], queue))
        pipe = self.redis.pipeline(transaction=False)
        pipe.mset(keys)
        for queue, messages in queues.items():
            pipe.lpush(queue, *messages)  # pushed one after the other: the worker pops the first placed first
        pipe.execute()

    def send_control(self, node: str, command: dict) -> None:
        self.redis.rpush(self.keys.node_control(node), json.dumps(command))

    def delete_queue(self, node: str) -> None:
        from juqueue.broker.keys import queue_depth_keys

        self.redis.delete(*queue_depth_keys(self.keys.node_queue(node)), self.keys.node_control(node))
