"""How long the controller's batches take: p50/p95 over the last minutes, for `/api/status`.

The controller thread records one duration per batch that did something (events read or a
tick); the API reads a summary on request. Recording is one append under a lock; the
percentiles are computed only when asked.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import Callable

WINDOW_S = 300.0  # the summary covers the batches of the last five minutes
MAX_SAMPLES = 100_000  # a bound on memory whatever the batch rate


class BatchTimes:
    def __init__(self, window_s: float = WINDOW_S, clock: Callable[[], float] = time.monotonic,
                 max_samples: int = MAX_SAMPLES) -> None:
        self.window_s = window_s
        self.clock = clock
        self._lock = threading.Lock()
        self._samples: deque[tuple[float, float]] = deque(maxlen=max_samples)  # (when, seconds)

    def record(self, seconds: float) -> None:
        with self._lock:
            self._samples.append((self.clock(), seconds))

    def summary(self) -> dict:
        """`{"p50_ms", "p95_ms", "count"}` over the window; the percentiles are null without batches."""
        cutoff = self.clock() - self.window_s
        with self._lock:
            while self._samples and self._samples[0][0] < cutoff:
                self._samples.popleft()
            values = sorted(d for _, d in self._samples)
        return {"p50_ms": _percentile_ms(values, 50), "p95_ms": _percentile_ms(values, 95), "count": len(values)}


def _percentile_ms(sorted_s: list[float], pct: float) -> float | None:
    """Nearest rank: the smallest value with at least `pct` % of the values at or below it."""
    if not sorted_s:
        return None
    rank = max(1, math.ceil(pct / 100 * len(sorted_s)))
    return round(sorted_s[rank - 1] * 1000, 3)
