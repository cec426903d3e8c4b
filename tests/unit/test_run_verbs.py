"""The run verbs' table (juqueue.run_verbs) is what the CLI, the API and the controller offer."""

from __future__ import annotations

import pytest
import typer.main

from juqueue.api.routes.runs import router
from juqueue.cli import app
from juqueue.controller.actions import UserActions
from juqueue.controller.controller import Controller
from juqueue.run_verbs import BY_NAME, RUN_VERBS, RunVerb
from juqueue.status import RunStatus as S

COMMANDS = typer.main.get_command(app).commands  # type: ignore[attr-defined]


def test_the_statuses_each_verb_acts_on() -> None:
    assert BY_NAME["cancel"].applies_to == {S.HELD, S.QUEUED, S.ASSIGNED, S.RUNNING}
    assert BY_NAME["requeue"].applies_to == {S.FAILED, S.CANCELLED}
    assert BY_NAME["hold"].applies_to == {S.QUEUED, S.ASSIGNED, S.RUNNING}
    assert BY_NAME["release"].applies_to == {S.HELD}
    assert BY_NAME["resume"].statuses() == {S.HELD, S.FAILED, S.CANCELLED}
    assert BY_NAME["resume"].statuses(completed=True) == {S.HELD, S.FAILED, S.CANCELLED, S.COMPLETED}
    assert BY_NAME["cancel"].statuses(completed=True) == BY_NAME["cancel"].applies_to  # no such flag


@pytest.mark.parametrize("verb", RUN_VERBS, ids=lambda v: v.name)
def test_cli_command(verb: RunVerb) -> None:
    command = COMMANDS[verb.name]
    assert command.help == verb.cli_help
    options = {opt for param in command.params for opt in param.opts}
    assert {"--experiment", "--json", "--url", "--port", "--work-dir", "--token"} <= options
    assert ("--status" in options) == verb.by_status
    assert ("--completed" in options) == verb.completed_flag


@pytest.mark.parametrize("verb", RUN_VERBS, ids=lambda v: v.name)
def test_api_route_and_controller_method(verb: RunVerb) -> None:
    routes = [r for r in router.routes if getattr(r, "path", None) == f"/api/runs/{verb.name}"]
    assert len(routes) == 1 and routes[0].methods == {"POST"} and routes[0].summary == verb.api_summary  # type: ignore[attr-defined]
    assert callable(getattr(Controller, verb.method)) and callable(getattr(UserActions, verb.method))
