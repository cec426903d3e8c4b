"""The live feed (`GET /api/events`, `GET /api/events/log`) on a real serve with local nodes:
deltas in order for a client connected before the runs start, replay after a reconnect with
`Last-Event-ID`, a stalled client resynced while the others go on, a followed log, the token
asked for, and `juqueue stop` not held up by open streams."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest

from helpers import Server, write_defs

CLUSTER = """
local:
  type: local
  num_slots: 4
  max_jobs: 1
  idle_timeout: 120
  grace_period: 2
  heartbeat_interval: 1
"""


class SseReader(threading.Thread):
    """Reads one SSE stream into `events` (id, event, data) until closed or the stream ends."""

    def __init__(self, server: Server, path: str = "/api/events", params: dict | None = None,
                 last_event_id: str | None = None) -> None:
        super().__init__(daemon=True)
        self.url, self.params = server.url + path, params
        self.headers = {"Authorization": f"Bearer {server.token}"}
        if last_event_id is not None:
            self.headers["Last-Event-ID"] = last_event_id
        self.events: list[tuple[str | None, str, dict]] = []
        self.status: int | None = None
        self.ended = threading.Event()  # the server ended the stream (not us)
        self._resp: httpx.Response | None = None
        self._closing = False
        self.start()

    def run(self) -> None:
        try:
            with httpx.stream("GET", self.url, params=self.params, headers=self.headers,
                              timeout=httpx.Timeout(10, read=None)) as resp:
                self._resp, self.status = resp, resp.status_code
                fields: dict[str, str] = {}
                for line in resp.iter_lines():
                    if line == "":
                        if "event" in fields:
                            self.events.append((fields.get("id"), fields["event"], json.loads(fields["data"])))
                        fields = {}
                    elif not line.startswith(":"):
                        key, _, value = line.partition(": ")
                        fields[key] = value
            self.ended.set()
        except (httpx.HTTPError, RuntimeError):
            if not self._closing:
                self.ended.set()

    def close(self) -> None:
        self._closing = True
        if self._resp is not None:
            self._resp.close()
        self.join(10)

    def wait(self, predicate, timeout: float = 60, what: str = "events") -> list:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if predicate(list(self.events)):
                return list(self.events)
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}: {self.events[-20:]}")

    def deltas(self) -> list[tuple[int, dict]]:
        return [(_n(i), d) for i, e, d in self.events if e == "delta"]


def _n(event_id: str | None) -> int:
    return int((event_id or "-0").rpartition("-")[2])


def _statuses(reader: SseReader, gid: str) -> list[str]:
    """The statuses a run had in the reader's deltas, in order, repeats collapsed."""
    out: list[str] = []
    for _, d in reader.deltas():
        for r in d["runs"]:
            if r["global_id"] == gid and (not out or out[-1] != r["status"]):
                out.append(r["status"])
    return out


def _consecutive(reader: SseReader) -> bool:
    ids = [_n(i) for i, _, _ in reader.events]
    return ids == list(range(ids[0], ids[0] + len(ids)))


def _runs(lines: list[str]) -> dict[str, str]:
    return {"f.yaml": "experiment: f\ncluster: local\nruns:\n" + "".join(f"  - {line}\n" for line in lines)}


@pytest.mark.slow(35)
def test_deltas_in_order_replay_log_follow_and_stop_with_open_streams(workspace):
    runs = ["{id: talk, cmd: [sh, -c, 'echo first; sleep 2; echo second'], max_retries: 0}",
            "{id: a, cmd: [sleep, '2'], max_retries: 0}", "{id: b, cmd: [sleep, '3'], max_retries: 0}",
            "{id: long, cmd: [sleep, '600'], max_retries: 0}"]
    defs = write_defs(workspace / "defs", CLUSTER, _runs(runs))
    server = Server(defs, workspace / "work", "--hold-new").start(tick=0.5)
    readers: list[SseReader] = []
    try:
        for path in ("/api/events", "/api/events/log?run=f@talk&log=out"):
            assert httpx.get(server.url + path, timeout=10).status_code == 401
            assert httpx.get(server.url + path, headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 401

        first, second = SseReader(server), SseReader(server)
        readers += [first, second]
        for r in (first, second):
            r.wait(lambda ev: ev and ev[0][1] == "hello", 20, "hello")
        assert first.status == 200
        assert server.api("POST", "/api/runs/release", json={"experiment": "f"}).status_code == 200
        log = SseReader(server, "/api/events/log", params={"run": "f@talk", "log": "out"})
        readers.append(log)

        # the first client goes away once it saw a run running; the second stays
        first.wait(lambda ev: any(r["status"] == "running" for _, e, d in ev if e == "delta" for r in d["runs"]),
                   60, "a running delta")
        first.close()
        seen = first.events[-1][0]
        second.wait(lambda ev: all(_statuses(second, g)[-1:] == ["completed"] for g in ("f@talk", "f@a", "f@b")),
                    90, "talk, a and b completed")
        for gid in ("f@talk", "f@a", "f@b"):
            moves = _statuses(second, gid)
            assert moves.index("running") < moves.index("completed"), (gid, moves)
        assert "resync" not in [e for _, e, _ in second.events] and _consecutive(second)

        # the log followed until the run was final, then `end`
        log.wait(lambda ev: ev and ev[-1][1] == "end", 30, "the log's end")
        assert "".join(d["text"] for _, e, d in log.events if e == "log") == "first\nsecond\n"
        assert log.events[-1][2]["status"] == "completed"

        # back with Last-Event-ID: what it missed, as the second client got it
        back = SseReader(server, last_event_id=seen)
        readers.append(back)
        upto = _n(second.events[-1][0])
        back.wait(lambda ev: ev and _n(ev[-1][0]) >= upto, 20, "the replay")
        assert back.events[0][1] != "hello" and _n(back.events[0][0]) == _n(seen) + 1
        assert _consecutive(back) and "resync" not in [e for _, e, _ in back.events]
        replayed = {i: (e, d) for i, e, d in back.events}
        assert all(replayed[i] == (e, d) for i, e, d in second.events if _n(i) > _n(seen) and _n(i) <= upto)
        gone = SseReader(server, last_event_id="someone-else-3")
        readers.append(gone)
        gone.wait(lambda ev: ev, 20, "a resync")
        assert gone.events[0][1] == "resync"

        status = server.api("GET", "/api/status").json()
        assert status["batch"]["count"] > 0 and status["batch"]["p95_ms"] >= status["batch"]["p50_ms"] > 0

        # `juqueue stop` with open streams (the feed twice and a log that never ends) ends as usual
        server.wait_for(lambda rs: any(r["global_id"] == "f@long" and r["status"] == "running" for r in rs), 30, "long running")
        tail = SseReader(server, "/api/events/log", params={"run": "f@long", "log": "err"})
        readers.append(tail)
        time.sleep(1)
        t0 = time.time()
        proc = server.cli("stop")
        assert proc.returncode == 0
        server.proc.wait(60)
        took = time.time() - t0
        assert took < 30, f"stop took {took:.1f} s"
        for r in (second, back, tail):
            assert r.ended.wait(10), "a stream was left open"
    finally:
        for r in readers:
            r.close()
        server.stop()


def _stalled_client(server: Server, rcvbuf: int = 4096) -> socket.socket:
    """A client that asks for the feed and then reads nothing (a small receive buffer, so the
    server's writes block soon)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                 f"Authorization: Bearer {server.token}\r\nAccept: text/event-stream\r\n\r\n".encode())
    return sock


@pytest.mark.slow(80)
def test_a_stalled_client_is_resynced_and_the_others_are_not(workspace):
    # Long names make every delta big: a stalled client's socket buffers (MBs on loopback) fill
    # with a few thousand state changes, and then its stream stops reading the feed.
    n, pad = 1500, "x" * 190
    runs = [f"{{id: t{i}{pad}, cmd: ['true'], max_retries: 0}}" for i in range(n)]
    defs = write_defs(workspace / "defs", CLUSTER.replace("max_jobs: 1", "max_jobs: 2"),
                      {"f.yaml": _runs(runs)["f.yaml"].replace("experiment: f", f"experiment: f{pad}")})
    server = Server(defs, workspace / "work", "--hold-new", env={"JUQUEUE_FEED_CLIENT_BACKLOG": "3"}).start(tick=0.5)
    reader = None
    stalled = None
    try:
        reader = SseReader(server)
        reader.wait(lambda ev: ev, 20, "hello")
        stalled = _stalled_client(server)
        time.sleep(0.5)
        assert server.api("POST", "/api/runs/release", json={"experiment": f"f{pad}"}).status_code == 200
        server.wait_all_final(240)
        done = {r["global_id"] for _, d in reader.deltas() for r in d["runs"] if r["status"] == "completed"}
        reader.wait(lambda ev: len({r["global_id"] for _, e, d in ev if e == "delta" for r in d["runs"]
                                    if r["status"] == "completed"}) == n, 20, "every completion")
        assert len(done) <= n
        assert [e for _, e, _ in reader.events].count("resync") == 0 and _consecutive(reader)

        stalled.settimeout(1.0)
        got = b""
        deadline = time.time() + 60
        while b"event: resync" not in got and time.time() < deadline:
            try:
                chunk = stalled.recv(1 << 16)
            except socket.timeout:
                continue
            if not chunk:
                break
            got += chunk
        assert b" 200 " in got.split(b"\r\n", 1)[0]
        assert b"event: resync" in got, f"no resync in the {len(got)} bytes the stalled client got"
        assert b'"reason":"behind"' in got.replace(b" ", b"")
    finally:
        if stalled is not None:
            stalled.close()
        if reader is not None:
            reader.close()
        server.stop()
