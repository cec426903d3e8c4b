"""Public liveness probe: says nothing about runs, so it needs no token."""

from __future__ import annotations

from fastapi import APIRouter

from juqueue.api.models.control import HealthModel
from juqueue.version import __version__

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness (public)", response_model=HealthModel)
def health() -> dict:
    return {"status": "ok", "version": __version__}
