"""Hands attempts to nodes: the spec file (secrets stay out of messages), the fencing key,
and the Celery message, published in bulk on one producer."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import redis
from celery import Celery
from kombu import Exchange, Queue

from juqueue.broker.keys import Keys
from juqueue.celery_app import RUN_TASK
from juqueue.paths import WorkDir, write_atomic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Assignment:
    global_id: str
    experiment: str
    run_id: str
    attempt: int
    node: str
    spec_json: str


def resolve_placeholders(value: str, run_dir: str, log_dir: str) -> str:
    return value.replace("{run_dir}", run_dir).replace("{log_dir}", log_dir)


class Publisher:
    def __init__(self, work: WorkDir, keys: Keys, client: redis.Redis, app: Celery) -> None:
        self.work = work
        self.keys = keys
        self.redis = client
        self.app = app

    def attempt_spec(self, a: Assignment) -> dict:
        spec = json.loads(a.spec_json)
        run_dir = self.work.run_dir(a.experiment, a.run_id)
        log_dir = self.work.log_dir(a.experiment, a.run_id)
        attempt_dir = self.work.attempt_dir(a.experiment, a.run_id, a.attempt)
        rd, ld = str(run_dir), str(log_dir)
        executor = spec.get("executor") or {}
        return {
            "global_id": a.global_id,
            "attempt": a.attempt,
            "cmd": [resolve_placeholders(str(c), rd, ld) for c in spec["cmd"]],
            "env": {k: resolve_placeholders(str(v), rd, ld) for k, v in (executor.get("env") or {}).items()},
            "python_search_path": [resolve_placeholders(p, rd, ld) for p in executor.get("python_search_path") or []],
            "venv": executor.get("venv"),
            "prepend_script": [resolve_placeholders(line, rd, ld) for line in executor.get("prepend_script") or []],
            "cuda": bool(executor.get("cuda")),
            "run_dir": rd,
            "stdout": str(self.work.attempt_log(a.experiment, a.run_id, a.attempt, "out")),
            "stderr": str(self.work.attempt_log(a.experiment, a.run_id, a.attempt, "err")),
            "exit_file": str(attempt_dir / "exit.json"),
        }

    def spec_path(self, a: Assignment) -> str:
        return str(self.work.attempt_dir(a.experiment, a.run_id, a.attempt) / "spec.json")

    def publish(self, assignments: list[Assignment]) -> None:
        """Spec files first, then the fencing keys, then the messages (one producer for all)."""
        if not assignments:
            return
        for a in assignments:
            self.work.log_dir(a.experiment, a.run_id).mkdir(parents=True, exist_ok=True)
            write_atomic(self.work.attempt_dir(a.experiment, a.run_id, a.attempt) / "spec.json", json.dumps(self.attempt_spec(a)), mode=0o600)
        pipe = self.redis.pipeline(transaction=False)
        for a in assignments:
            pipe.set(self.keys.current_attempt(a.global_id), a.attempt)
        pipe.execute()
        with self.app.producer_or_acquire() as producer:
            for a in assignments:
                self.app.send_task(
                    RUN_TASK,
                    args=[a.global_id, a.attempt, self.spec_path(a)],
                    task_id=f"{a.global_id}:{a.attempt}",
                    queue=self._queue(a.node),
                    declare=[],
                    producer=producer,
                )

    def _queue(self, node: str) -> Queue:
        """The anonymous exchange routes straight to the list: no kombu bindings, which a
        Redis reset would erase (kombu #1063), and nothing to declare per publish."""
        name = self.keys.node_queue(node)
        return Queue(name, Exchange(""), routing_key=name)

    def send_control(self, node: str, command: dict) -> None:
        self.redis.rpush(self.keys.node_control(node), json.dumps(command))

    def delete_queue(self, node: str) -> None:
        from juqueue.broker.keys import queue_depth_keys

        self.redis.delete(*queue_depth_keys(self.keys.node_queue(node)), self.keys.node_control(node))
