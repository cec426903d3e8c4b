"""The overview `juqueue status` and the dashboard show: counts, clusters and their nodes."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy.exc import SQLAlchemyError

from juqueue.api.auth import require_token
from juqueue.api.deps import ContextDep
from juqueue.api.models import NodeModel
from juqueue.api.routes.usage import usage_totals
from juqueue.status import RunStatus
from juqueue.version import __version__

router = APIRouter(prefix="/api", tags=["status"], dependencies=[Depends(require_token)])


@router.get("/status", summary="Run counts, clusters with their nodes, definition errors, store errors")
def get_status(ctx: ContextDep) -> dict:
    c = ctx.controller
    counts: dict[str, int] | None = {s.value: 0 for s in RunStatus}
    store_error = _controller_store_error(c)  # set by the controller while the store refuses its commits
    try:
        counts.update(ctx.store.status_counts())  # type: ignore[union-attr]
    except SQLAlchemyError as exc:  # the store cannot be read: say so, and answer anyway
        counts = None
        store_error = _controller_store_error(c) or f"store unavailable: {_first_line(exc)}"

    def snapshot() -> tuple:
        return c.nodes_snapshot(), c.cluster_health(), list(c.definition_errors), c.clusters_snapshot()

    # served by the controller thread, also while it waits for the store
    try:
        nodes, health, errors, scaling = c.call(snapshot)
    except SQLAlchemyError as exc:
        # The commit that follows every command carried a batch of events and failed; the
        # controller now waits for the store and serves commands without writing: ask again.
        store_error = store_error or f"store unavailable: {_first_line(exc)}"
        nodes, health, errors, scaling = c.call(snapshot)
    clusters: dict[str, dict] = {
        name: {"name": name, "type": spec.type, "paused_reason": health.get(name), **scaling.get(name, {}), "nodes": []}
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
            "version": __version__, "flower_url": ctx.flower_url, "store_error": store_error or _controller_store_error(c),
            "batch": _batch_times(c)}


def _batch_times(c: object) -> dict:
    """The controller's batch durations over the last minutes (p50/p95 in ms, null without batches)."""
    times = getattr(c, "batch_times", None)
    return times.summary() if times is not None else {"p50_ms": None, "p95_ms": None, "count": 0}


def _controller_store_error(c: object) -> str | None:
    """The controller's "store unavailable: ..." (a plain attribute: no `call`, any thread)."""
    return getattr(c, "store_error", None)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
