"""Slow store reads kept a few seconds (`juqueue.api.read_cache`): never older than `max_age_s`;
a request near the end of a value's life gets it and starts one read in the background."""

from __future__ import annotations

import threading

from juqueue.api.read_cache import RefreshAhead


def test_value_is_kept_read_ahead_in_the_background_and_read_at_once_when_too_old() -> None:
    now, reads = [0.0], []
    gate, done = threading.Event(), threading.Event()

    def read() -> int:
        reads.append(now[0])
        if len(reads) == 2:  # the read ahead: held until the test lets it finish
            assert gate.wait(30)
            done.set()
        return len(reads)

    cache = RefreshAhead(read, max_age_s=5.0, ahead_s=3.5, clock=lambda: now[0])
    assert cache.get() == 1 and reads == [0.0]  # nothing kept: read at once
    now[0] = 1.0
    assert cache.get() == 1 and reads == [0.0]  # fresh, not yet near its end
    now[0] = 2.0
    assert cache.get() == 1  # near its end: kept value now, one read started in the background
    assert cache.get() == 1 and len(reads) == 2  # one read ahead at a time
    gate.set()
    assert done.wait(30)
    now[0] = 2.5  # the value read ahead counts from when its read started (2.0): fresh, no read started
    while cache.get() != 2:  # the background thread stores it right after `done`
        pass
    assert len(reads) == 2
    now[0] = 20.0
    assert cache.get() == 3 and reads == [0.0, 2.0, 20.0]  # too old: read at once, as before


def test_a_failed_read_ahead_leaves_the_kept_value() -> None:
    now, calls = [0.0], []
    failed = threading.Event()

    def read() -> str:
        calls.append(1)
        if len(calls) == 2:
            failed.set()
            raise RuntimeError("store away")
        return "v"

    cache = RefreshAhead(read, max_age_s=5.0, ahead_s=3.5, clock=lambda: now[0])
    assert cache.get() == "v"
    now[0] = 3.0
    assert cache.get() == "v"
    assert failed.wait(30)
    assert cache.get() == "v"  # still within its age
