"""Which ready run starts first: the queue order, shared by the controller's placement and the
simulator's.

Pure. Higher `priority` first (per run, else its experiment's; default 0). Among equal
priority, runs with a known `duration` start longest first (LPT: the long tail of a sweep
starts early, so its last nodes empty together instead of one long run keeping a node for
hours after the rest ended); runs without one follow, in queue order among themselves. Then
the time the run was queued (a requeued run queues anew), then definition order (its place
in the definition files), then experiment and run id. Without any priority or duration this
is first queued, first started, and runs queued together start in the order they were
defined.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from typing import TypeVar

__all__ = ["QueueKey", "queue_key", "ordered_head"]

QueueKey = tuple  # (-priority, no duration, -duration, queued_at, definition order, experiment, run id)
T = TypeVar("T")


def queue_key(priority: float = 0.0, duration_s: float | None = None, queued_at: float | None = None,
              def_order: int | None = None, experiment: str = "", run_id: str = "") -> QueueKey:
    """The sort key of one ready run: a smaller key starts first. Unknown times and orders
    count as 0 (stores written before they were recorded keep the alphabetical order)."""
    known = duration_s is not None
    return (-float(priority), 0 if known else 1, -float(duration_s) if known else 0.0, float(queued_at or 0.0),
            int(def_order or 0), experiment, run_id)


def ordered_head(items: Iterable[T], n: int, key: Callable[[T], QueueKey]) -> list[T]:
    """The first `n` of `items` in queue order. `items` come in the order they were queued
    (that position breaks the remaining ties), so a caller whose items carry no priority or
    duration gets its own order back."""
    if n <= 0:
        return []
    ranked = heapq.nsmallest(n, enumerate(items), key=lambda pair: (key(pair[1]), pair[0]))
    return [item for _, item in ranked]
