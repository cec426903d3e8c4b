"""Nodes: the live ones from the controller, recent ended ones from the store (with why), and
a user's drain or stop of one node (acted on by the controller thread)."""

from __future__ import annotations

from typing import Annotated, Callable

from fastapi import APIRouter, Depends, HTTPException, Path, Query

from juqueue.api.auth import require_token
from juqueue.api.context import AppContext
from juqueue.api.deps import ContextDep
from juqueue.api.models.errors import error_responses
from juqueue.api.models.nodes import NodeActionRequest, NodeActionResponse, NodeModel
from juqueue.controller.node_actions import NodeActionResult, NodeOutcome
from juqueue.store.tables import NodeRow

router = APIRouter(prefix="/api", tags=["nodes"], dependencies=[Depends(require_token)],
                   responses=error_responses(401, 403, 404, 409, 422, 503))

ENDED_LOOKUP_LIMIT = 100_000  # an action on a node that is not live looks this far back for it
NodeName = Annotated[str, Path(description="the node's name, as `/api/nodes` lists it")]


def _ended(row: NodeRow) -> NodeModel:
    return NodeModel(name=row.name, cluster=row.cluster, type=row.backend, state=row.state, live=False,  # type: ignore[arg-type]
                     slots_total=row.slots_total, slots=[None] * row.slots_total, job_id=row.job_id,
                     reason=row.reason, host=row.host, started_at=row.started_at, ended_at=row.ended_at,
                     last_heartbeat=row.last_heartbeat, time_limit_at=row.time_limit_at, billed_from=row.billed_from,
                     billed_until=row.billed_until, billed_estimated=bool(row.billed_estimated),
                     replaces=row.replaces, protected_until=row.protected_until)


@router.get("/nodes", summary="Live nodes, then recently ended ones", response_model=list[NodeModel])
def list_nodes(ctx: ContextDep, ended_limit: Annotated[int, Query(ge=0, le=500)] = 50) -> list[NodeModel]:
    c = ctx.controller
    live = [NodeModel.model_validate(dict(n, live=True)) for n in c.status_view().nodes]  # never waits for the controller
    names = {n.name for n in live}
    ended = [_ended(r) for r in ctx.store.all_nodes() if r.name not in names][:ended_limit]
    return live + ended


def _act(ctx: AppContext, name: str, action: str, body: NodeActionRequest | None,
         method: Callable[[str, str | None], NodeActionResult]) -> NodeActionResponse:
    """Act on the controller thread; answer with the node as it is then, or 404/409 saying why not."""
    c = ctx.controller
    why = body.reason if body is not None else None

    def act() -> tuple[NodeActionResult, dict | None]:
        result = method(name, why)
        return result, next((n for n in c.nodes_snapshot() if n["name"] == name), None)

    result, node = c.call(act)  # type: ignore[misc]
    if result.outcome == NodeOutcome.NOT_LIVE or node is None:
        row = next((r for r in ctx.store.all_nodes(limit=ENDED_LOOKUP_LIMIT) if r.name == name), None)
        if row is None:
            raise HTTPException(404, detail=f"no node named {name!r} (`juqueue status` or GET /api/nodes lists them)")
        raise HTTPException(409, detail=f"node {name!r} has ended ({row.state}: {row.reason or 'no reason recorded'}); "
                                        f"nothing to {action}")
    if result.outcome == NodeOutcome.REFUSED:
        raise HTTPException(409, detail=result.detail)
    return NodeActionResponse(action=action, changed=result.outcome == NodeOutcome.DONE,  # type: ignore[arg-type]
                              detail=result.detail, node=NodeModel.model_validate(dict(node, live=True)))


@router.post("/nodes/{name}/drain", summary="Drain a node: it takes no new runs and is released once empty",
             response_model=NodeActionResponse)
def drain_node(name: NodeName, ctx: ContextDep, body: NodeActionRequest | None = None) -> NodeActionResponse:
    """Its runs go on; once the last one ended the node is stopped (a job still queued at the
    scheduler is cancelled at once). Draining a drained node changes nothing (200, `changed`
    false); a stopping node cannot be drained (409)."""
    return _act(ctx, name, "drain", body, ctx.controller.drain_node)


@router.post("/nodes/{name}/stop", summary="Stop a node: its runs are interrupted and queued again, then it ends",
             response_model=NodeActionResponse)
def stop_node(name: NodeName, ctx: ContextDep, body: NodeActionRequest | None = None) -> NodeActionResponse:
    """Two-phase, like every stop: each run's stop (`node_stop`) is recorded, then the worker
    stops them (SIGTERM, then SIGKILL after the grace period) and exits. The runs are queued
    again without spending a retry. Stopping a stopping node changes nothing (200, `changed` false)."""
    return _act(ctx, name, "stop", body, ctx.controller.stop_node)
