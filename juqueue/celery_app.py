"""The one place a Celery app is built; every process (controller, worker, CLI, Flower) uses it.

Settings that must agree across processes on one broker (the visibility timeout above all:
the shortest value on a broker wins) are fixed here.
"""

from __future__ import annotations

import os
from pathlib import Path

from celery import Celery

from juqueue.paths import WorkDir

RUN_TASK = "juqueue.run_attempt"
TICK_TASK = "juqueue.reconcile_tick"
# Above any wall time: broker redelivery must never decide a rerun (JuQueue's leases do).
VISIBILITY_TIMEOUT_S = 30 * 24 * 3600


def celery_settings(broker_url: str) -> dict[str, object]:
    return {
        "broker_url": broker_url,
        "broker_transport_options": {"visibility_timeout": VISIBILITY_TIMEOUT_S},
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": 12,  # ~ a minute: a job that cannot work must not sit on a node
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
        "result_backend": None,
        "task_acks_late": False,  # reruns are JuQueue's decision, not the broker's
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "worker_prefetch_multiplier": 4,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,  # `-E` turns them on for Flower; they cost CPU per run
        "task_send_sent_event": False,
        "task_default_queue": "jq.default",
        "worker_enable_remote_control": True,
        "enable_utc": True,
    }


def make_celery_app(broker_url: str | None = None) -> Celery:
    app = Celery("juqueue", set_as_current=False)
    if broker_url is not None:
        app.conf.update(celery_settings(broker_url))
    return app


def find_work_dir(start: Path | None = None) -> Path | None:
    """JUQUEUE_WORK_DIR, else the nearest directory upwards holding a JuQueue work dir (its
    `.juqueue/` with the broker URL file or server.json)."""
    env = os.environ.get("JUQUEUE_WORK_DIR")
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        work = WorkDir(candidate)
        if work.broker_url_file.is_file() or work.server_file.is_file():
            return candidate
    return None


def settings_from_work_dir() -> dict[str, object]:
    """Lazy settings for `celery -A juqueue.workers.app` (inspect, Flower): the URL comes
    from the work dir's 0600 file, never from `-b` on a command line."""
    work = find_work_dir()
    if work is None:
        return {}
    url_file = WorkDir(work).broker_url_file
    if not url_file.is_file():
        return {}
    return celery_settings(url_file.read_text().strip())
