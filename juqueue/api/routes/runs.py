"""Runs: the list (paged and filtered, the total in X-Total-Count), detail with attempts and
history, the run verbs (juqueue.run_verbs: cancel, requeue, hold, release, resume; one route each,
selections in juqueue.api.selection), and log tails."""

from __future__ import annotations

import json
from typing import Annotated, Callable, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response

from juqueue.api.auth import require_token
from juqueue.api.context import AppContext
from juqueue.api.deps import ContextDep, StoreDep
from juqueue.api.selection import ResumeSelection, RunSelection, act, run_filter
from juqueue.run_verbs import RUN_VERBS, RunVerb
from juqueue.status import RunStatus
from juqueue.store.run_query import RunQueryError
from juqueue.store.store import Store
from juqueue.store.tables import RunRow

router = APIRouter(prefix="/api/runs", tags=["runs"], dependencies=[Depends(require_token)])

STATUS_VALUES = [s.value for s in RunStatus]
MAX_LOG_CHUNK = 1 << 20
DEFAULT_PAGE, MAX_PAGE = 100, 1000
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


def _get_run(store: Store, global_id: str) -> RunRow:
    row = store.get_run(global_id)
    if row is None:
        raise HTTPException(404, detail=f"no run with global id {global_id!r} (global ids look like 'experiment@run')")
    return row


@router.get("", summary="List runs: one page; the total matching in X-Total-Count")
def list_runs(
    store: StoreDep,
    response: Response,
    offset: Annotated[int, Query(ge=0, description="skip this many matching runs")] = 0,
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


@router.get("/{global_id}", summary="One run with its attempts and history")
def get_run(global_id: str, store: StoreDep) -> dict:
    row = _get_run(store, global_id)
    out = run_to_dict(row)
    out["attempts"] = [a.model_dump(exclude={"id"}) for a in store.attempts_of(global_id)]
    out["events"] = [e.model_dump(exclude={"id"}) for e in store.events_of(global_id)]
    return out


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
    router.add_api_route(f"/{_verb.name}", _verb_endpoint(_verb), methods=["POST"], summary=_verb.api_summary)


@router.get("/{global_id}/logs", summary="A chunk of an attempt's stdout or stderr, from a byte offset")
def get_logs(
    global_id: str,
    ctx: ContextDep,
    attempt: Annotated[int | None, Query(ge=1, description="default: the latest attempt")] = None,
    stream: Literal["out", "err"] = "out",
    offset: Annotated[int, Query(ge=0)] = 0,
    max_bytes: Annotated[int, Query(ge=1, le=MAX_LOG_CHUNK)] = MAX_LOG_CHUNK,
) -> dict:
    row = _get_run(ctx.store, global_id)
    number = attempt if attempt is not None else row.attempt  # 0: not started yet, an empty answer to poll on
    if attempt is not None and number > row.attempt:
        have = f"attempts 1..{row.attempt}" if row.attempt else "no attempt yet"
        raise HTTPException(404, detail=f"run {global_id!r} has no attempt {number} ({have})")
    data = b""
    if number >= 1:
        try:
            with open(ctx.work.attempt_log(row.experiment, row.run_id, number, stream), "rb") as fh:
                fh.seek(offset)
                data = _whole_utf8(fh.read(max_bytes))
        except FileNotFoundError:
            pass
    return {
        "global_id": global_id, "attempt": number, "stream": stream, "offset": offset,
        "next_offset": offset + len(data), "text": data.decode("utf-8", errors="replace"),
        "latest_attempt": row.attempt, "status": row.status, "final": RunStatus(row.status).is_final,
    }


def _whole_utf8(data: bytes) -> bytes:
    """Drop a multi-byte character cut at the end; the next poll reads it whole."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:
            return data
        if byte >= 0xC0:  # a lead byte: is its sequence complete?
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return data if back >= need else data[:-back]
    return data
