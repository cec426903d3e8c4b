"""Runs: list, detail with attempts and history, the run verbs (juqueue.run_verbs: cancel, requeue,
hold, release, resume; one route each), and log tails."""

from __future__ import annotations

import json
from typing import Annotated, Callable, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from juqueue.api.auth import require_token
from juqueue.api.context import AppContext
from juqueue.api.deps import ContextDep, StoreDep
from juqueue.run_verbs import RUN_VERBS, RunVerb
from juqueue.status import RunStatus
from juqueue.store.store import Store
from juqueue.store.tables import RunRow

router = APIRouter(prefix="/api/runs", tags=["runs"], dependencies=[Depends(require_token)])

STATUS_VALUES = [s.value for s in RunStatus]
MAX_LOG_CHUNK = 1 << 20


class RunSelection(BaseModel):
    """Which runs an action is for: global ids, or every run of one experiment."""

    ids: list[str] = Field(default_factory=list, description="global ids, 'experiment@run'")
    experiment: str | None = Field(None, description="act on every run of this experiment")
    status: str | None = Field(None, description="act on every run with this status (with `experiment`: of that experiment)")


class ResumeSelection(RunSelection):
    completed: bool = Field(False, description="also rerun completed runs (a fresh retry budget, the next attempt)")


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


def _check_status(status: str | None) -> str | None:
    if status is None or status == "":
        return None
    if status.lower() not in STATUS_VALUES:
        raise HTTPException(422, detail=f"unknown status {status!r}; allowed: {', '.join(STATUS_VALUES)}")
    return status.lower()


def _get_run(store: Store, global_id: str) -> RunRow:
    row = store.get_run(global_id)
    if row is None:
        raise HTTPException(404, detail=f"no run with global id {global_id!r} (global ids look like 'experiment@run')")
    return row


@router.get("", summary="List runs")
def list_runs(
    store: StoreDep,
    experiment: Annotated[str | None, Query(description="only this experiment's runs")] = None,
    status: Annotated[str | None, Query(description=f"one of: {', '.join(STATUS_VALUES)}")] = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
) -> list[dict]:
    return [run_to_dict(r) for r in store.list_runs(experiment=experiment, status=_check_status(status), limit=limit)]


@router.get("/{global_id}", summary="One run with its attempts and history")
def get_run(global_id: str, store: StoreDep) -> dict:
    row = _get_run(store, global_id)
    out = run_to_dict(row)
    out["attempts"] = [a.model_dump(exclude={"id"}) for a in store.attempts_of(global_id)]
    out["events"] = [e.model_dump(exclude={"id"}) for e in store.events_of(global_id)]
    return out


def _select(store: Store, sel: RunSelection) -> tuple[list[str], list[str]]:
    """Split the selection into known global ids and unknown names (never silently dropped)."""
    if not sel.ids and not sel.experiment and not sel.status:
        raise HTTPException(422, detail="give 'ids' (global ids), 'experiment' or 'status'")
    status = _check_status(sel.status)
    wanted = list(dict.fromkeys(sel.ids))
    unknown: list[str] = []
    if sel.experiment or status:
        runs = store.list_runs(experiment=sel.experiment, status=status)
        if not runs and sel.experiment and not store.list_runs(experiment=sel.experiment, limit=1):
            unknown.append(sel.experiment)
        wanted += [r.global_id for r in runs if r.global_id not in wanted]
    known = store.runs_by_id(wanted)
    unknown += [g for g in wanted if g not in known]
    return [g for g in wanted if g in known], unknown


def _act(sel: RunSelection, ctx: AppContext, action: Callable[[list[str]], list[str]], done_key: str) -> dict:
    """Select, act on the controller thread, and say what was done, skipped and unknown."""
    known, unknown = _select(ctx.store, sel)
    done = ctx.controller.call(lambda: action(known)) if known else []
    return {done_key: done, "unknown": unknown, "skipped": [g for g in known if g not in done]}  # type: ignore[operator]


def _verb_endpoint(verb: RunVerb) -> Callable[..., dict]:
    """`POST /api/runs/<verb>`: the selection, acted on by the verb's controller method."""
    body = ResumeSelection if verb.completed_flag else RunSelection

    def endpoint(sel: RunSelection, ctx: AppContext) -> dict:
        method = getattr(ctx.controller, verb.method)
        if isinstance(sel, ResumeSelection):  # the verb's body when it has the `completed` flag
            return _act(sel, ctx, lambda known: method(known, sel.completed), verb.done_key)
        return _act(sel, ctx, method, verb.done_key)

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
