"""The run task's message as the publisher builds it is the one Celery itself would build."""

from __future__ import annotations

import base64
import json

from juqueue.broker.messages import TaskMessages
from juqueue.celery_app import RUN_TASK, make_celery_app


def test_message_matches_celerys_own() -> None:
    app = make_celery_app("redis://127.0.0.1:1/0")
    args = ["exp-Ω@run \"7\"", 3, [0, 5]]
    doc = json.loads(TaskMessages(app, RUN_TASK).build("exp@r:3", args, "jq.q"))
    want = app.amqp.as_task_v2("exp@r:3", RUN_TASK, args=args)  # Celery's saferepr for argsrepr
    assert doc["headers"] == {**want.headers, "ignore_result": True}
    assert json.loads(base64.b64decode(doc["body"])) == json.loads(json.dumps(want.body))
    assert doc["properties"]["delivery_info"] == {"exchange": "", "routing_key": "jq.q"}
    assert doc["properties"]["correlation_id"] == "exp@r:3"


def test_a_long_argument_list_falls_back_to_celerys_shortened_repr() -> None:
    app = make_celery_app("redis://127.0.0.1:1/0")
    args = ["x" * 3000, 1, [0]]
    doc = json.loads(TaskMessages(app, RUN_TASK).build("t:1", args, "q"))
    assert doc["headers"]["argsrepr"] == app.amqp.as_task_v2("t:1", RUN_TASK, args=args).headers["argsrepr"]
    assert len(doc["headers"]["argsrepr"]) < 3000
