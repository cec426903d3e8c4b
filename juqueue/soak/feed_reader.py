"""A live-feed client for the whole soak: reads `GET /api/events`, reconnects with `Last-Event-ID`
through `serve` restarts, and on `resync` fetches the run list again, as a page would.

What it saw goes to `feed.json`: per run the statuses it learnt (from deltas or a resync's fetch),
and how many messages, resyncs and connections there were. The checker asks that every run's
final status was seen.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx

from juqueue.soak.server import SoakServer


class FeedReader:
    def __init__(self, server: SoakServer, out: Path) -> None:
        self.server, self.out = server, out
        self.seen: dict[str, list[str]] = {}
        self.counts = {"messages": 0, "deltas": 0, "resyncs": 0, "connects": 0, "errors": 0}
        self.resync_reasons: dict[str, int] = {}
        self.last_id: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="soak-feed", daemon=True)
        self._lock = threading.Lock()

    def start(self) -> "FeedReader":
        self._thread.start()
        return self

    def _note(self, gid: str, status: str) -> None:
        with self._lock:
            statuses = self.seen.setdefault(gid, [])
            if not statuses or statuses[-1] != status:
                statuses.append(status)

    def _resync(self, reason: str) -> None:
        self.counts["resyncs"] += 1
        self.resync_reasons[reason] = self.resync_reasons.get(reason, 0) + 1
        for run in self.server.runs():
            self._note(run["global_id"], run["status"])

    def _handle(self, event: str, data: str) -> None:
        self.counts["messages"] += 1
        body = json.loads(data) if data else {}
        if event == "delta":
            self.counts["deltas"] += 1
            for run in body.get("runs", []):
                self._note(run["global_id"], run["status"])
        elif event == "resync":
            self._resync(str(body.get("reason")))
        elif event == "hello":
            self._resync("hello")  # what happened before this client listened is not in the feed

    def _read_once(self) -> None:
        headers = {"Authorization": f"Bearer {self.server.token}"}
        if self.last_id:
            headers["Last-Event-ID"] = self.last_id
        timeout = httpx.Timeout(10, read=30)
        with httpx.stream("GET", self.server.url + "/api/events", headers=headers, timeout=timeout) as resp:
            resp.raise_for_status()
            self.counts["connects"] += 1
            event, data = "message", []
            for line in resp.iter_lines():
                if self._stop.is_set():
                    return
                if line == "":
                    if data:
                        self._handle(event, "\n".join(data))
                    event, data = "message", []
                elif line.startswith("id:"):
                    self.last_id = line[3:].strip()
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._read_once()
            except (httpx.HTTPError, OSError, ValueError):
                self.counts["errors"] += 1
            self._stop.wait(1.0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(35)
        with self._lock:
            self.out.write_text(json.dumps({"seen": self.seen, "counts": self.counts, "resync_reasons": self.resync_reasons},
                                           indent=1))
