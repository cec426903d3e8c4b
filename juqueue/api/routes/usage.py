"""Node-hours: what each cluster and experiment billed, how busy it was, and the series."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from juqueue.accounting import compute_usage, downsample
from juqueue.api.auth import require_token
from juqueue.api.deps import StoreDep
from juqueue.api.models.errors import error_responses
from juqueue.api.models.usage import UsageModel
from juqueue.api.read_cache import PerStore
from juqueue.store.store import Store

router = APIRouter(prefix="/api", tags=["usage"], dependencies=[Depends(require_token)],
                   responses=error_responses(401, 422))


def _read_totals(store: Store) -> dict:
    nodes, attempts, ended = store.usage_inputs()
    return compute_usage(nodes, attempts, time.time(), ended).as_dict()


# /api/status is polled every few seconds (the totals read nodes, live attempts and the running
# totals): at most 5 s old, read again ahead of time while clients keep asking
# (juqueue.api.read_cache), by one reader at a time
_totals: PerStore[Store, dict] = PerStore(_read_totals, max_age_s=5.0)



def usage_totals(store: Store) -> dict:
    """The totals, read at most every few seconds per store."""
    return _totals.get(store)


@router.get("/usage", summary="Node-hours billed, busy slot-hours, efficiency and work lost; the series per cluster",
            response_model=UsageModel)
def get_usage(
    store: StoreDep,
    since: Annotated[float | None, Query(description="series from this Unix time on")] = None,
    max_points: Annotated[int, Query(ge=2, le=100_000, description="series points per cluster at most")] = 1000,
) -> dict:
    out = dict(usage_totals(store))
    out["series"] = {
        cluster: [{"ts": ts, "nodes": n, "slots_busy": b} for ts, n, b in downsample(points, max_points)]
        for cluster, points in store.usage_series(since).items()
    }
    return out
