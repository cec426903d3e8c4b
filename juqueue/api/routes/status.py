"""The overview `juqueue status` and the dashboard show: counts, clusters and their nodes."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy.exc import SQLAlchemyError

from juqueue.api.auth import require_token
from juqueue.api.definition_errors import error_details
from juqueue.api.deps import ContextDep
from juqueue.api.models.errors import error_responses
from juqueue.api.models.nodes import NodeModel
from juqueue.api.models.status import StatusModel
from juqueue.api.routes.usage import usage_totals
from juqueue.status import RunStatus
from juqueue.version import __version__

router = APIRouter(prefix="/api", tags=["status"], dependencies=[Depends(require_token)],
                   responses=error_responses(401, 503))


@router.get("/status", summary="Run counts, clusters with their nodes, definition errors, store errors",
            response_model=StatusModel, response_model_exclude_unset=True)
def get_status(ctx: ContextDep) -> dict:
    """Fields a server cannot fill now are left out (`usage` while the store cannot be read)."""
    c = ctx.controller
    counts: dict[str, int] | None = {s.value: 0 for s in RunStatus}
    store_error = _controller_store_error(c)  # set by the controller while the store refuses its commits
    try:
        counts.update(ctx.store.status_counts())  # type: ignore[union-attr]
    except SQLAlchemyError as exc:  # the store cannot be read: say so, and answer anyway
        counts = None
        store_error = _controller_store_error(c) or f"store unavailable: {_first_line(exc)}"

    # the controller's copies, published at its commits: this read never waits for its thread
    view = c.status_view()
    nodes, health, errors, known, scaling = view.nodes, view.health, view.definition_errors, view.error_details, view.clusters
    try:
        sources = {r.name: r.source_file for r in ctx.store.experiments()} if counts is not None else {}
    except SQLAlchemyError:
        sources = {}
    clusters: dict[str, dict] = {
        name: {"name": name, "type": spec.type, "num_slots": spec.num_slots, "paused_reason": health.get(name),
               **scaling.get(name, {}), "nodes": []}
        for name, spec in ctx.clusters().items()
    }
    for node in nodes:
        entry = clusters.setdefault(node["cluster"], {"name": node["cluster"], "type": node.get("type"),
                                                      "paused_reason": health.get(node["cluster"]), "nodes": []})
        entry["nodes"].append(NodeModel.model_validate(dict(node, live=True)).model_dump(mode="json"))  # /api/nodes' shape
    if counts is not None:  # the store answers: node-hours per cluster (null while it cannot be read)
        try:
            billed = usage_totals(ctx.store)["clusters"]
        except SQLAlchemyError:
            billed = {}
        for name, entry in clusters.items():
            entry["usage"] = billed.get(name)  # type: ignore[union-attr]
    return {"counts": counts, "clusters": list(clusters.values()), "definition_errors": errors,
            "definition_error_details": [e.model_dump() for e in error_details(errors, known, sources)],
            "version": __version__, "flower_url": ctx.flower_url, "store_error": store_error or _controller_store_error(c),
            "batch": _batch_times(c), "loading": ctx.loading()}


def _batch_times(c: object) -> dict:
    """The controller's batch durations over the last minutes (p50/p95 in ms, null without batches)."""
    times = getattr(c, "batch_times", None)
    return times.summary() if times is not None else {"p50_ms": None, "p95_ms": None, "count": 0}


def _controller_store_error(c: object) -> str | None:
    """The controller's "store unavailable: ..." (a plain attribute: no `call`, any thread)."""
    return getattr(c, "store_error", None)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
