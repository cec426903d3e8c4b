"""`juqueue watch`'s reader of the live feed (`GET /api/events`, server-sent events).

`parse_sse` turns the stream's lines into (id, event, data) messages with no I/O. `FeedReader`
is a daemon thread that keeps one stream open, puts each message on a queue the watch loop
drains, and reconnects after a drop with `Last-Event-ID` (the server then sends what was
missed, or `resync`). It never renders and never fetches anything else: the loop decides.
"""

from __future__ import annotations

import json
import queue
import threading
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from juqueue.client import ApiClient, ApiError, ServerUnreachable, TokenRejected

READ_TIMEOUT_S = 45.0  # the server sends a keep-alive every 15 s: three missed ones mean the stream is dead
RETRY_S = (1.0, 2.0, 5.0, 10.0)  # waits between reconnects, the last repeated
LOST = "lost"  # the pseudo-event put on the queue when the stream dropped (data: why)


@dataclass(frozen=True)
class FeedMessage:
    """One message of the stream: its id, its type (hello, delta, resync) and its JSON data."""

    id: str | None
    event: str
    data: Any


def parse_sse(lines: Iterable[str]) -> Iterator[FeedMessage]:
    """Server-sent events from text lines: fields until a blank line; comments (`: keep-alive`) skipped.
    A message whose data is not JSON is passed on as text."""
    fields: dict[str, list[str]] = {}
    for line in lines:
        if line == "":
            if "data" in fields or "event" in fields:
                text = "\n".join(fields.get("data", []))
                try:
                    data: Any = json.loads(text) if text else None
                except json.JSONDecodeError:
                    data = text
                ids = fields.get("id")
                yield FeedMessage(ids[-1] if ids else None, (fields.get("event") or ["message"])[-1], data)
            fields = {}
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key, []).append(value[1:] if value.startswith(" ") else value)


class FeedReader(threading.Thread):
    """Follows `/api/events` until `close()`, reconnecting; messages go to `messages`."""

    def __init__(self, url: str, token: str | None) -> None:
        super().__init__(name="juqueue-watch-feed", daemon=True)
        self.api = ApiClient(url, token)
        self.messages: queue.Queue[FeedMessage] = queue.Queue()
        self.last_id: str | None = None
        self._closed = threading.Event()

    def run(self) -> None:
        failures = 0  # drops in a row without a message in between: the wait grows with them
        while not self._closed.is_set():
            why, heard = self._follow()
            if self._closed.is_set():
                return
            failures = 1 if heard else failures + 1
            self.messages.put(FeedMessage(None, LOST, why))
            self._closed.wait(RETRY_S[min(failures, len(RETRY_S)) - 1])

    def _follow(self) -> tuple[str, bool]:
        """One connection: its messages onto the queue. Returns why it ended and whether any message came."""
        headers = {"Last-Event-ID": self.last_id} if self.last_id else {}
        heard = False
        try:
            with self.api.stream("/api/events", headers=headers, read_timeout=READ_TIMEOUT_S) as resp:
                for msg in parse_sse(resp.iter_lines()):
                    if self._closed.is_set():
                        return "closed", heard
                    if msg.id is not None:
                        self.last_id = msg.id
                    heard = True
                    self.messages.put(msg)
        except ServerUnreachable:
            return "no answer from the server", heard
        except TokenRejected:
            return "the server rejected the token", heard
        except ApiError as exc:
            return exc.detail, heard
        except Exception as exc:  # a dropped or garbled stream: reconnect, never kill the view
            return f"{type(exc).__name__}: {exc}", heard
        return "the server closed the feed", heard

    def close(self) -> None:
        """Stop reconnecting; the open stream ends with the process (the thread is a daemon)."""
        self._closed.set()
        self.api.close()
