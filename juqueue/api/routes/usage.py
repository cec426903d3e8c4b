"""Node-hours: what each cluster and experiment billed, how busy it was, and the series."""

from __future__ import annotations

import threading
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from juqueue.accounting import compute_usage, downsample
from juqueue.api.auth import require_token
from juqueue.api.deps import StoreDep
from juqueue.api.models.errors import error_responses
from juqueue.api.models.usage import UsageModel
from juqueue.store.store import Store

router = APIRouter(prefix="/api", tags=["usage"], dependencies=[Depends(require_token)],
                   responses=error_responses(401, 422))


_CACHE_S = 5.0  # /api/status is polled every few seconds (the totals read nodes, live attempts and running totals)
_cache: dict[int, tuple[float, dict]] = {}


_lock = threading.Lock()


def usage_totals(store: Store) -> dict:
    """The totals, computed at most every few seconds per store, by one request at a time: the
    dashboard asks `/api/status` and `/api/experiments` together, and requests arriving while the
    totals are computed take that result instead of computing them again."""
    hit = _cache.get(id(store))
    if hit is not None and time.monotonic() - hit[0] < _CACHE_S:
        return hit[1]
    with _lock:
        hit = _cache.get(id(store))
        if hit is not None and time.monotonic() - hit[0] < _CACHE_S:
            return hit[1]
        now = time.monotonic()
        nodes, attempts, ended = store.usage_inputs()
        totals = compute_usage(nodes, attempts, time.time(), ended).as_dict()
        _cache[id(store)] = (now, totals)
        return totals


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
