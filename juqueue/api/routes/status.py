"""The overview `juqueue status` and the dashboard show: counts, clusters and their nodes."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from juqueue.api.auth import require_token
from juqueue.api.deps import ContextDep
from juqueue.status import RunStatus
from juqueue.version import __version__

router = APIRouter(prefix="/api", tags=["status"], dependencies=[Depends(require_token)])

NODE_KEYS = ("name", "state", "slots_used", "slots_total", "runs", "job_id", "reason")


@router.get("/status", summary="Run counts, clusters with their nodes, definition errors")
def get_status(ctx: ContextDep) -> dict:
    counts = {s.value: 0 for s in RunStatus}
    counts.update(ctx.store.status_counts())
    c = ctx.controller
    nodes, health, errors = c.call(lambda: (c.nodes_snapshot(), c.cluster_health(), list(c.definition_errors)))
    clusters: dict[str, dict] = {
        name: {"name": name, "type": spec.type, "paused_reason": health.get(name), "nodes": []}
        for name, spec in ctx.clusters.items()
    }
    for node in nodes:
        entry = clusters.setdefault(node["cluster"], {"name": node["cluster"], "type": node.get("type"),
                                                      "paused_reason": health.get(node["cluster"]), "nodes": []})
        entry["nodes"].append({k: node.get(k) for k in NODE_KEYS})
    return {"counts": counts, "clusters": list(clusters.values()), "definition_errors": errors,
            "version": __version__, "flower_url": ctx.flower_url}
