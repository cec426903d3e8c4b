"""What the dashboard needs besides the lists: the header's facts (version, Flower), a reload's
preview (it asks before it reloads) and one run's definition (its command and settings)."""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends

from juqueue.api.auth import require_token
from juqueue.api.deps import ContextDep, StoreDep
from juqueue.api.models.dashboard import AboutModel, ReloadPreviewModel, RunDefinitionModel
from juqueue.api.models.errors import error_responses
from juqueue.api.routes.runs import get_run_row
from juqueue.version import __version__

router = APIRouter(prefix="/api", dependencies=[Depends(require_token)], responses=error_responses(401, 403, 404, 503))


@router.get("/about", tags=["status"], summary="The server's version and Flower's address", response_model=AboutModel)
def about(ctx: ContextDep) -> AboutModel:
    return AboutModel(version=__version__, flower_url=ctx.flower_url)


@router.post("/reload/preview", tags=["control"], summary="What a reload would add, update and stop (nothing applied)",
             response_model=ReloadPreviewModel)
def reload_preview(ctx: ContextDep) -> dict:
    """Evaluates the def dir (in a subprocess, like a reload: so a POST) and compares it with the
    store in a transaction that is rolled back. clusters.yaml is not compared."""
    return ctx.reload(dry_run=True)


@router.get("/runs/{global_id}/definition", tags=["runs"], summary="One run's definition: its command and settings",
            response_model=RunDefinitionModel)
def run_definition(global_id: str, store: StoreDep) -> RunDefinitionModel:
    row = get_run_row(store, global_id)
    try:
        spec = json.loads(row.spec_json or "{}")
    except json.JSONDecodeError:
        spec = {}
    spec = spec if isinstance(spec, dict) else {}
    cmd = spec.get("cmd")
    return RunDefinitionModel(global_id=global_id, cmd=[str(c) for c in cmd] if isinstance(cmd, list) else [], spec=spec)
