"""A store read that is too slow for every request (the usage totals read every attempt, the
experiments' projection every queued run), kept for a few seconds and read again ahead of time.

A value is never older than `max_age_s`: a request that finds none that fresh reads it at once,
as before. A request in the last `ahead_s` of the value's life still gets it, and starts one read
in a background thread that replaces it; so a page or a script that keeps asking never waits for
the slow read, and one that asks rarely gets a fresh value.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Generic, TypeVar
import weakref
from weakref import WeakKeyDictionary

log = logging.getLogger(__name__)

T = TypeVar("T")
K = TypeVar("K")


class RefreshAhead(Generic[T]):
    def __init__(self, read: Callable[[], T], max_age_s: float = 5.0, ahead_s: float = 3.5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.read, self.max_age_s, self.ahead_s, self.clock = read, max_age_s, ahead_s, clock
        self._lock = threading.Lock()
        self._value: tuple[float, T] | None = None  # (read at, value)
        self._refreshing = False

    def get(self) -> T:
        now = self.clock()
        with self._lock:
            hit = self._value
            if hit is not None and now - hit[0] < self.max_age_s:
                if now - hit[0] >= self.max_age_s - self.ahead_s and not self._refreshing:
                    self._refreshing = True
                    threading.Thread(target=self._refresh, name="juqueue-read-ahead", daemon=True).start()
                return hit[1]
        return self._store(self.read(), now)

    def _store(self, value: T, started: float) -> T:
        """Keep `value` as read from `started` on, unless a newer read is kept already."""
        with self._lock:
            if self._value is None or self._value[0] <= started:
                self._value = (started, value)
        return value

    def _refresh(self) -> None:
        started = self.clock()  # its age counts from before the read: never older than it says
        try:
            self._store(self.read(), started)
        except Exception as exc:  # the next request past max_age reads it itself and sees the error
            log.warning("reading ahead failed: %s", exc)
        finally:
            with self._lock:
                self._refreshing = False


class PerStore(Generic[K, T]):
    """One `RefreshAhead` per store (the API's tests open several stores in one process)."""

    def __init__(self, read: Callable[[K], T], max_age_s: float = 5.0, ahead_s: float = 3.5) -> None:
        self.read, self.max_age_s, self.ahead_s = read, max_age_s, ahead_s
        self._lock = threading.Lock()
        self._caches: WeakKeyDictionary = WeakKeyDictionary()

    def get(self, store: K) -> T:
        with self._lock:
            cache = self._caches.get(store)
            if cache is None:
                ref = weakref.ref(store)  # the cache must not keep its store alive
                cache = self._caches[store] = RefreshAhead(lambda: self.read(ref()), self.max_age_s, self.ahead_s)  # type: ignore[arg-type]
        return cache.get()
