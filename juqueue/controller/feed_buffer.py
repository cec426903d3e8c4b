"""The live feed's ring buffer: messages the controller thread appends, the API's streams read.

The controller thread never waits for a client. It appends one message to a bounded ring
(`collections.deque(maxlen=...)`) under a lock held only for the append and sets a
`threading.Event`; a small waker thread then wakes the waiting streams with one
`loop.call_soon_threadsafe` per event loop (a non-blocking write to its self-pipe), so the
controller thread makes no system call for the feed. Each stream keeps only a cursor (the last id it sent): its queue is the part
of the shared ring after its cursor, bounded by `client_backlog`. A stream whose cursor is more
than that behind, or no longer in the ring, gets `resync` instead of what it missed. No message
is copied or encoded per client (each message carries its SSE frame as bytes, built once) and
nothing grows with a slow client.

Ids are `<boot>-<n>`: `n` increases by one per message, `boot` names this buffer (this `serve`),
so a `Last-Event-ID` from an earlier server is never taken for one of ours. A batch committed
while no stream listens builds no message but still takes an id (`skip`), so a client
reconnecting afterwards sees a gap and is told to resync.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from itertools import islice

DELTA, RESYNC, HELLO = "delta", "resync", "hello"
BUFFER_ENV, BACKLOG_ENV = "JUQUEUE_FEED_BUFFER", "JUQUEUE_FEED_CLIENT_BACKLOG"
DEFAULT_BUFFER, DEFAULT_BACKLOG = 1000, 500


@dataclass(frozen=True)
class FeedMessage:
    """One SSE message, serialized once and shared by every stream."""

    n: int
    event: str
    data: str  # JSON text
    frame: bytes  # the whole SSE message (id, event, data) as sent: encoded once, written to every stream


def sse_text(event: str, data: str, event_id: str | None = None) -> str:
    """One SSE message (`data` is one line of JSON)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {data}\n\n"


@dataclass(eq=False)
class Waiter:
    """One stream's wake-up: an asyncio.Event of the stream's own loop."""

    loop: asyncio.AbstractEventLoop
    event: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class Catchup:
    """What a stream sends next: the messages after its cursor, or a resync (then `messages` is empty)."""

    messages: list[FeedMessage]
    resync: str | None  # why the stream must refetch everything, or None
    last: int  # the newest id; the stream's cursor after sending this


class FeedBuffer:
    def __init__(self, size: int | None = None, client_backlog: int | None = None, boot: str | None = None) -> None:
        size = size or _env_int(BUFFER_ENV, DEFAULT_BUFFER)
        self.client_backlog = max(1, client_backlog or _env_int(BACKLOG_ENV, DEFAULT_BACKLOG))
        self.boot = boot or format(time.time_ns() // 1_000_000, "x")
        self._lock = threading.Lock()
        self._ring: deque[FeedMessage] = deque(maxlen=max(1, size))
        self._last = 0
        self._waiters: set[Waiter] = set()
        self._due = threading.Event()  # a message waits to be announced to the streams
        self._waker: threading.Thread | None = None

    # ---------------------------------------------------------------- the controller's side
    @property
    def active(self) -> bool:
        """Whether any stream listens. Read without the lock: a stream that registers meanwhile
        starts from the id current at its registration, so it misses nothing it could have had."""
        return bool(self._waiters)

    def publish(self, event: str, payload: dict) -> FeedMessage:
        data = json.dumps(payload, separators=(",", ":"), default=str)
        with self._lock:
            self._last += 1
            msg = FeedMessage(self._last, event, data, sse_text(event, data, self.format_id(self._last)).encode())
            self._ring.append(msg)
            if self._waker is None:
                self._waker = threading.Thread(target=self._wake_loop, name="juqueue-feed-wake", daemon=True)
                self._waker.start()
        self._due.set()  # no system call here: the waker thread writes to the loops' self-pipes
        return msg

    def skip(self) -> None:
        """A change nobody received: the id moves on and what the ring held can no longer be
        replayed across it (a reconnecting client resyncs)."""
        with self._lock:
            self._last += 1
            if self._ring:
                self._ring.clear()

    def _wake_loop(self) -> None:
        """The streams' wake-ups, off the controller thread: a write to an event loop's self-pipe
        gives up the GIL, and the thread that made it then waits to get it back (up to the
        interpreter's switch interval, behind whatever thread runs meanwhile). Messages that come
        while one wake-up is under way are announced by the next, together."""
        while True:
            self._due.wait()
            self._due.clear()
            with self._lock:
                waiters = list(self._waiters)
            _wake(waiters)

    # ---------------------------------------------------------------- the streams' side
    def subscribe(self, loop: asyncio.AbstractEventLoop) -> tuple[Waiter, int]:
        """Register a stream (on its loop); returns its waiter and the current id."""
        waiter = Waiter(loop)
        with self._lock:
            self._waiters.add(waiter)
            return waiter, self._last

    def unsubscribe(self, waiter: Waiter) -> None:
        with self._lock:
            self._waiters.discard(waiter)

    @property
    def last(self) -> int:
        return self._last

    def since(self, cursor: int) -> Catchup:
        """The messages after `cursor`, or a resync when they are not all here or too many."""
        with self._lock:
            last = self._last
            if cursor == last:
                return Catchup([], None, last)
            if cursor > last:
                return Catchup([], "unknown id", last)
            if last - cursor > self.client_backlog:
                return Catchup([], "behind", last)
            if not self._ring or self._ring[0].n > cursor + 1:
                return Catchup([], "gone from the buffer", last)
            return Catchup(list(islice(self._ring, cursor + 1 - self._ring[0].n, None)), None, last)

    def format_id(self, n: int) -> str:
        return f"{self.boot}-{n}"

    def parse_id(self, text: str | None) -> int | None:
        """The number of one of our ids (a `Last-Event-ID`); None: absent, malformed, or another server's."""
        boot, sep, n = (text or "").strip().rpartition("-")
        if not sep or boot != self.boot or not n.isdigit():
            return None
        return int(n)


def _wake(waiters: list[Waiter]) -> None:
    """One `call_soon_threadsafe` per event loop, not per stream: each one writes to the loop's
    self-pipe, and every such system call gives up the GIL, which the controller thread then
    waits to get back (with five streams that was a tenth of a batch)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Event]] = {}
    for w in waiters:
        by_loop.setdefault(w.loop, []).append(w.event)
    for loop, events in by_loop.items():
        try:
            loop.call_soon_threadsafe(_set_all, events)
        except RuntimeError:  # its loop is closed: the server is going away
            pass


def _set_all(events: list[asyncio.Event]) -> None:
    for event in events:
        event.set()


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    try:
        return max(1, int(raw)) if raw else default
    except ValueError:
        return default
