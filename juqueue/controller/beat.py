"""The Celery beat app that publishes the controller's reconcile tick.

Beat is a single scheduler by contract: `serve` runs exactly one. Ticks expire quickly, so
a backlog (the controller busy or down) is dropped rather than replayed.
"""

from __future__ import annotations

import os

from juqueue.celery_app import TICK_TASK, make_celery_app, settings_from_work_dir


def beat_settings() -> dict[str, object]:
    settings = settings_from_work_dir()
    interval = float(os.environ.get("JUQUEUE_TICK_INTERVAL", "2.0"))
    queue = os.environ.get("JUQUEUE_TICK_QUEUE", "jq.ticks")
    settings["beat_schedule"] = {
        "juqueue-reconcile": {
            "task": TICK_TASK,
            "schedule": interval,
            "options": {"queue": queue, "exchange": "", "routing_key": queue, "expires": max(1.0, interval * 2)},
        }
    }
    return settings


app = make_celery_app()
app.add_defaults(beat_settings)
