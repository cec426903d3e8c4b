"""Server control: reload the definitions, stop the server."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from juqueue.api.auth import require_token
from juqueue.api.deps import ContextDep

router = APIRouter(prefix="/api", tags=["control"], dependencies=[Depends(require_token)])


class StopRequest(BaseModel):
    cancel_jobs: bool = False


@router.post("/reload", summary="Re-evaluate the def dir (in a subprocess) and apply the difference")
def reload(ctx: ContextDep, yes: bool = False) -> dict:
    """A reload that would stop more than 10 live runs (their definitions changed) is applied
    only with `yes=true`; without it the answer lists them under `would_stop` and changes nothing."""
    return ctx.reload(yes=yes) if yes else ctx.reload()


@router.post("/stop", summary="Stop the server; cancel_jobs also ends SLURM jobs")
def stop(ctx: ContextDep, body: StopRequest | None = None) -> dict:
    return ctx.request_stop((body or StopRequest()).cancel_jobs)
