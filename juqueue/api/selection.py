"""Which runs a run verb acts on, and the verb carried out in chunks.

A selection names global ids, one experiment and/or one status (the older form), and/or a
`filter` (the runs list's: statuses, experiment, cluster, node, q). The runs matching the filter
come from the store in one query (ids only); the verb then runs on the controller thread in
chunks of `CHUNK` ids, one `Controller.call` each, so acting on 100,000 runs never holds the
controller (events, placement) for seconds at a time.
"""

from __future__ import annotations

from typing import Callable

from fastapi import HTTPException
from pydantic import BaseModel, Field

from juqueue.api.context import AppContext
from juqueue.run_verbs import RunVerb
from juqueue.store.run_query import RunFilter, RunQueryError
from juqueue.store.store import Store

CHUNK = 1000  # ids per controller call


class RunFilterBody(BaseModel):
    """The runs list's filter (`GET /api/runs`'s query parameters) as a selection's `filter`."""

    statuses: list[str] = Field(default_factory=list, description="any of these statuses (none: any status)")
    experiment: str | None = Field(None, description="only this experiment's runs")
    cluster: str | None = Field(None, description="only runs of this cluster")
    node: str | None = Field(None, description="only runs on this node (their latest attempt's)")
    q: str | None = Field(None, description="only runs whose run id contains this (case-insensitive)")


class RunSelection(BaseModel):
    """Which runs an action is for: global ids, every run of one experiment and/or status, and/or
    every run matching `filter`; the union of what is given."""

    ids: list[str] = Field(default_factory=list, description="global ids, 'experiment@run'")
    experiment: str | None = Field(None, description="act on every run of this experiment")
    status: str | None = Field(None, description="act on every run with this status (with `experiment`: of that experiment)")
    filter: RunFilterBody | None = Field(None, description="act on every run matching this filter (the runs list's)")


class ResumeSelection(RunSelection):
    completed: bool = Field(False, description="also rerun completed runs (a fresh retry budget, the next attempt)")


def run_filter(**fields: object) -> RunFilter:
    """A RunFilter from user input; a bad one is the client's error (422 naming it)."""
    try:
        return RunFilter.of(**fields)  # type: ignore[arg-type]
    except RunQueryError as exc:
        raise HTTPException(422, detail=str(exc)) from None


def select(store: Store, sel: RunSelection) -> tuple[list[str], list[str]]:
    """The known global ids selected, and the unknown names (ids, experiments; never silently dropped)."""
    wheres = []
    if sel.experiment or sel.status:
        wheres.append(run_filter(statuses=[sel.status] if sel.status else None, experiment=sel.experiment))
    if sel.filter is not None:
        where = run_filter(**sel.filter.model_dump())
        if where.empty:
            raise HTTPException(422, detail="'filter' names nothing: give statuses, experiment, cluster, node or q "
                                            "(an empty filter would select every run)")
        wheres.append(where)
    if not sel.ids and not wheres:
        raise HTTPException(422, detail="give 'ids' (global ids), 'experiment', 'status' or 'filter'")
    wanted = list(dict.fromkeys(sel.ids))
    known_ids = set(store.statuses(wanted))
    unknown = [g for g in wanted if g not in known_ids]
    picked = [g for g in wanted if g in known_ids]
    seen = set(picked)
    for where in wheres:
        ids = store.run_ids(where)
        if not ids and where.experiment and where.experiment not in unknown \
                and not store.count_runs(RunFilter(experiment=where.experiment)):
            unknown.append(where.experiment)
        picked += [g for g in ids if g not in seen]
        seen.update(ids)
    return picked, unknown


def act(sel: RunSelection, ctx: AppContext, verb: RunVerb, action: Callable[[list[str]], list[str]],
        completed: bool = False) -> dict:
    """Select, act on the controller thread chunk by chunk, and say what was done, skipped (and
    why) and unknown, and how many runs the selection matched."""
    known, unknown = select(ctx.store, sel)
    done: list[str] = []
    for start in range(0, len(known), CHUNK):
        chunk = known[start:start + CHUNK]
        done += ctx.controller.call(lambda chunk=chunk: action(chunk))  # type: ignore[misc]
    acted = set(done)
    skipped = [g for g in known if g not in acted]
    return {verb.done_key: done, "unknown": unknown, "skipped": skipped,
            "skipped_reasons": skipped_reasons(ctx.store, verb, skipped, completed), "matched": len(known)}


def skipped_reasons(store: Store, verb: RunVerb, skipped: list[str], completed: bool = False) -> dict[str, str]:
    """Why each skipped run was not acted on: its status, which the verb does not act on."""
    statuses = store.statuses(skipped)
    wanted = verb.statuses(completed)
    out = {}
    for gid in skipped:
        status = statuses.get(gid)
        if status is None:
            out[gid] = "removed meanwhile"
        elif status in wanted:
            out[gid] = f"{status.value}: its status changed while {verb.name} ran"
        else:
            out[gid] = f"{status.value}: {verb.skipped_why}"
    return out
