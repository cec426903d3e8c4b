"""Runs: the list (paged and filtered, the total in X-Total-Count), detail with attempts and
history, the run verbs (juqueue.run_verbs: cancel, requeue, hold, release, resume; one route each,
selections in juqueue.api.selection), and logs (juqueue.api.routes.logs)."""

from __future__ import annotations

import json
from typing import Annotated, Callable

from fastapi import APIRouter, Depends, HTTPException, Query, Response

from juqueue.api.auth import require_token
from juqueue.api.context import AppContext
from juqueue.api.deps import ContextDep, StoreDep
from juqueue.api.logs import stderr_tail
from juqueue.api.models.errors import error_responses
from juqueue.api.models.runs import VERB_ANSWERS, AttemptModel, EventModel, RunDetailModel, RunModel
from juqueue.api.selection import ResumeSelection, RunSelection, act, run_filter
from juqueue.run_verbs import RUN_VERBS, RunVerb
from juqueue.status import RunStatus
from juqueue.store.run_query import RunQueryError
from juqueue.store.store import Store
from juqueue.store.tables import RunRow

router = APIRouter(prefix="/api/runs", tags=["runs"], dependencies=[Depends(require_token)],
                   responses=error_responses(401, 403, 404, 422, 503))

STATUS_VALUES = [s.value for s in RunStatus]
DEFAULT_PAGE, MAX_PAGE = 100, 1000
MAX_OFFSET = 1 << 62  # SQL integers are 64-bit: a larger offset is refused (422), not a 500
TOTAL_HEADER = "X-Total-Count"  # the runs matching the list's filter, whatever the page


def run_to_dict(row: RunRow) -> dict:
    """The stable JSON shape users' scripts depend on (`runs --json`; documented in the README)."""
    return {
        "experiment": row.experiment, "id": row.run_id, "global_id": row.global_id, "status": row.status,
        "attempt": row.attempt, "exit_code": row.exit_code, "node": row.node, "cluster": row.cluster,
        "queued_at": row.queued_at, "started_at": row.started_at, "ended_at": row.ended_at,
        "reason": row.reason, "defined": row.defined, "depends_on": _json_list(row.depends_on),
        "retries_used": row.retries_used, "max_retries": row.max_retries,
    }


def _json_list(text: str) -> list:
    try:
        value = json.loads(text or "[]")
    except json.JSONDecodeError:
        return []
    return value if isinstance(value, list) else []


def get_run_row(store: Store, global_id: str) -> RunRow:
    row = store.get_run(global_id)
    if row is None:
        raise HTTPException(404, detail=f"no run with global id {global_id!r} (global ids look like 'experiment@run')")
    return row


@router.get("", summary="List runs: one page; the total matching in X-Total-Count", response_model=list[RunModel],
            responses={200: {"headers": {TOTAL_HEADER: {"description": "runs matching the filter, whatever the page",
                                                        "schema": {"type": "integer"}}}}})
def list_runs(
    store: StoreDep,
    response: Response,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="skip this many matching runs")] = 0,
    limit: Annotated[int, Query(ge=1, description=f"at most this many runs (default {DEFAULT_PAGE}, at most {MAX_PAGE})")] = DEFAULT_PAGE,
    sort: Annotated[str | None, Query(description="a field of the run's JSON shape, '-' first for descending "
                                                  "(default: experiment, then run id)")] = None,
    status: Annotated[list[str] | None, Query(description=f"any of these (repeat it): {', '.join(STATUS_VALUES)}")] = None,
    experiment: Annotated[str | None, Query(description="only this experiment's runs")] = None,
    cluster: Annotated[str | None, Query(description="only runs of this cluster")] = None,
    node: Annotated[str | None, Query(description="only runs on this node (their latest attempt's)")] = None,
    q: Annotated[str | None, Query(description="only runs whose run id contains this (case-insensitive)")] = None,
) -> list[dict]:
    if limit > MAX_PAGE:
        raise HTTPException(422, detail=f"limit {limit} is over the maximum of {MAX_PAGE}: page with offset "
                                        f"(the total is in the {TOTAL_HEADER} header)")
    where = run_filter(statuses=status, experiment=experiment, cluster=cluster, node=node, q=q)
    try:
        rows = store.list_runs(where=where, offset=offset, limit=limit, sort=sort)
    except RunQueryError as exc:
        raise HTTPException(422, detail=str(exc)) from None
    response.headers[TOTAL_HEADER] = str(store.count_runs(where))
    return [run_to_dict(r) for r in rows]


@router.get("/{global_id}", summary="One run with its attempts and history", response_model=RunDetailModel)
def get_run(global_id: str, ctx: ContextDep) -> RunDetailModel:
    """Attempts oldest first, each with its node's host and its slots; a failed attempt (exited,
    exit code not 0) with the last lines of its stderr."""
    store = ctx.store
    row = get_run_row(store, global_id)
    attempts = store.attempts_of(global_id)
    hosts = store.node_hosts(a.node for a in attempts if a.node)
    out = []
    for a in attempts:
        model = AttemptModel.model_validate(dict(a.model_dump(exclude={"id", "slots"}), slots=_slot_list(a.slots),
                                                 host=hosts.get(a.node or "")))
        if a.end_reason == "exited" and a.exit_code not in (None, 0):
            model.stderr_tail = stderr_tail(ctx.work.attempt_log(row.experiment, row.run_id, a.number, "err"))
        out.append(model)
    events = [EventModel.model_validate(e.model_dump(exclude={"id"})) for e in store.events_of(global_id)]
    return RunDetailModel.model_validate(dict(run_to_dict(row), attempts=out, events=events))


def _slot_list(text: str | None) -> list[int] | None:
    """The attempt's slots column (a JSON list; NULL in stores older than schema 4)."""
    if text is None:
        return None
    value = _json_list(text)
    return [int(v) for v in value if isinstance(v, int)]


def _verb_endpoint(verb: RunVerb) -> Callable[..., dict]:
    """`POST /api/runs/<verb>`: the selection, acted on by the verb's controller method."""
    body = ResumeSelection if verb.completed_flag else RunSelection

    def endpoint(sel: RunSelection, ctx: AppContext) -> dict:
        method = getattr(ctx.controller, verb.method)
        if isinstance(sel, ResumeSelection):  # the verb's body when it has the `completed` flag
            return act(sel, ctx, verb, lambda known: method(known, sel.completed), sel.completed)
        return act(sel, ctx, verb, method)

    endpoint.__name__ = endpoint.__qualname__ = verb.method  # the operation id: `<name>_runs_api_runs_<name>_post`
    endpoint.__annotations__ = {"sel": body, "ctx": ContextDep, "return": dict}  # FastAPI reads these, not strings
    return endpoint


for _verb in RUN_VERBS:
    router.add_api_route(f"/{_verb.name}", _verb_endpoint(_verb), methods=["POST"], summary=_verb.api_summary,
                         response_model=VERB_ANSWERS[_verb.name])
