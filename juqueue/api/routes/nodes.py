"""Nodes: the live ones from the controller, recent ended ones from the store (with why)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from juqueue.api.auth import require_token
from juqueue.api.deps import ContextDep
from juqueue.store.tables import NodeRow

router = APIRouter(prefix="/api", tags=["nodes"], dependencies=[Depends(require_token)])


def _ended(row: NodeRow) -> dict:
    return {"name": row.name, "cluster": row.cluster, "type": row.backend, "state": row.state, "slots_used": 0,
            "slots_total": row.slots_total, "slots": [None] * row.slots_total, "runs": [], "job_id": row.job_id, "reason": row.reason, "host": row.host,
            "started_at": row.started_at, "ended_at": row.ended_at, "last_heartbeat": row.last_heartbeat, "live": False,
            "billed_from": row.billed_from, "billed_until": row.billed_until, "billed_estimated": bool(row.billed_estimated),
            "replaces": row.replaces, "protected_until": row.protected_until}


@router.get("/nodes", summary="Live nodes, then recently ended ones")
def list_nodes(ctx: ContextDep, ended_limit: Annotated[int, Query(ge=0, le=500)] = 50) -> list[dict]:
    c = ctx.controller
    live = [dict(n, live=True) for n in c.call(c.nodes_snapshot)]
    names = {n["name"] for n in live}
    ended = [_ended(r) for r in ctx.store.all_nodes() if r.name not in names][:ended_limit]
    return live + ended
