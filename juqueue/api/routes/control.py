"""Server control: reload the definitions, stop the server."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from juqueue.api.auth import require_token
from juqueue.api.deps import ContextDep
from juqueue.api.models.control import ReloadModel, StopAnswerModel
from juqueue.api.models.errors import error_responses

router = APIRouter(prefix="/api", tags=["control"], dependencies=[Depends(require_token)],
                   responses=error_responses(401, 403, 422, 503))


class StopRequest(BaseModel):
    cancel_jobs: bool = False


@router.post("/reload", summary="Re-evaluate the def dir (in a subprocess) and apply the difference",
             response_model=ReloadModel, response_model_exclude_unset=True)
def reload(ctx: ContextDep, yes: bool = False) -> dict:
    """A reload that would stop more than 10 live runs (their definitions changed) is applied
    only with `yes=true`; without it the answer lists them under `would_stop` and changes nothing."""
    return ctx.reload(yes=yes) if yes else ctx.reload()


@router.post("/stop", summary="Stop the server; cancel_jobs also ends SLURM jobs",
             response_model=StopAnswerModel, response_model_exclude_unset=True)
def stop(ctx: ContextDep, body: StopRequest | None = None) -> dict:
    return ctx.request_stop((body or StopRequest()).cancel_jobs)
