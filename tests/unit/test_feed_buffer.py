"""The live feed's ring buffer and its SSE streams, with no I/O: ids, replay after a reconnect,
a client that falls behind or comes back too late gets `resync`, batches nobody listened to
leave a gap, and the stream generator ends when the server stops."""

from __future__ import annotations

import asyncio
import json
import threading

from juqueue.api.routes.events import feed_stream
from juqueue.controller.feed_buffer import DELTA, RESYNC, FeedBuffer
from juqueue.controller.timing import BatchTimes


def _listening(buf: FeedBuffer) -> tuple[asyncio.AbstractEventLoop, object]:
    loop = asyncio.new_event_loop()
    waiter, _ = buf.subscribe(loop)
    return loop, waiter


def test_ids_increase_and_are_bound_to_this_buffer():
    buf = FeedBuffer(size=10, client_backlog=10, boot="b1")
    loop, _ = _listening(buf)
    try:
        first = buf.publish(DELTA, {"x": 1})
        second = buf.publish(DELTA, {"x": 2})
    finally:
        loop.close()
    assert (first.n, second.n) == (1, 2)
    assert json.loads(second.data) == {"x": 2}
    assert buf.format_id(2) == "b1-2" and buf.parse_id("b1-2") == 2
    assert buf.parse_id("other-2") is None  # an earlier server's id is never taken for ours
    assert buf.parse_id("garbage") is None and buf.parse_id(None) is None


def test_replay_after_the_cursor_and_nothing_when_caught_up():
    buf = FeedBuffer(size=10, client_backlog=10, boot="b")
    for i in range(5):
        buf.publish(DELTA, {"i": i})
    got = buf.since(2)
    assert got.resync is None and [m.n for m in got.messages] == [3, 4, 5] and got.last == 5
    assert buf.since(5).messages == [] and buf.since(5).resync is None


def test_a_cursor_gone_from_the_ring_resyncs():
    buf = FeedBuffer(size=3, client_backlog=100, boot="b")
    for i in range(6):
        buf.publish(DELTA, {"i": i})
    assert [m.n for m in buf.since(3).messages] == [4, 5, 6]
    assert buf.since(2).resync == "gone from the buffer"
    assert buf.since(99).resync == "unknown id"


def test_a_client_more_than_its_backlog_behind_resyncs():
    buf = FeedBuffer(size=100, client_backlog=2, boot="b")
    for i in range(5):
        buf.publish(DELTA, {"i": i})
    assert [m.n for m in buf.since(3).messages] == [4, 5]
    behind = buf.since(2)
    assert behind.resync == "behind" and behind.messages == [] and behind.last == 5


def test_a_batch_nobody_heard_leaves_a_gap():
    buf = FeedBuffer(size=10, client_backlog=10, boot="b")
    buf.publish(DELTA, {"i": 0})
    buf.publish(DELTA, {"i": 1})
    buf.skip()  # committed while no stream listened: no message, but the id moves on
    assert buf.last == 3
    assert buf.since(1).resync == "gone from the buffer"
    assert buf.since(3).resync is None


def test_publish_wakes_the_waiting_streams_through_their_loop():
    buf = FeedBuffer(size=10, client_backlog=10, boot="b")
    loop = asyncio.new_event_loop()
    try:
        waiter, current = buf.subscribe(loop)
        assert current == 0 and buf.active
        buf.publish(DELTA, {})
        assert not waiter.event.is_set()  # set on the stream's loop, not on the caller's thread
        loop.run_until_complete(asyncio.wait_for(waiter.event.wait(), 30))  # the waker thread schedules it
        assert waiter.event.is_set()
        buf.unsubscribe(waiter)
        assert not buf.active
    finally:
        loop.close()


def _collect(buf: FeedBuffer, last_event_id: str | None, until: int, publish=lambda: None) -> list[tuple[str, str, dict]]:
    """Run feed_stream until `until` messages came; parse them as (id, event, data)."""
    async def main() -> list[bytes]:
        stop = False
        out: list[bytes] = []
        gen = feed_stream(buf, last_event_id, lambda: stop, keepalive_s=60, poll_s=0.05)
        async for chunk in gen:
            out.append(chunk)
            if len(out) == 1:
                publish()
            if len(out) >= until:
                stop = True
        return out

    parsed = []
    for chunk in asyncio.run(asyncio.wait_for(main(), 5)):
        fields = dict(line.split(": ", 1) for line in chunk.decode().strip().splitlines())
        parsed.append((fields.get("id"), fields["event"], json.loads(fields["data"])))
    return parsed


def test_stream_says_hello_then_sends_deltas_in_order():
    buf = FeedBuffer(size=10, client_backlog=10, boot="b")
    got = _collect(buf, None, 3, publish=lambda: (buf.publish(DELTA, {"i": 1}), buf.publish(DELTA, {"i": 2})))
    assert [(i, e) for i, e, _ in got] == [("b-0", "hello"), ("b-1", "delta"), ("b-2", "delta")]
    assert [d.get("i") for _, _, d in got[1:]] == [1, 2]


def test_stream_replays_from_last_event_id_or_resyncs():
    buf = FeedBuffer(size=10, client_backlog=10, boot="b")
    for i in range(4):
        buf.publish(DELTA, {"i": i})
    assert [i for i, _, _ in _collect(buf, "b-2", 2)] == ["b-3", "b-4"]
    resync = _collect(buf, "old-2", 1)
    assert resync[0][:2] == ("b-4", RESYNC) and resync[0][2]["reason"] == "unknown id"
    small = FeedBuffer(size=10, client_backlog=1, boot="b")
    for i in range(4):
        small.publish(DELTA, {"i": i})
    assert _collect(small, "b-1", 1)[0][1:] == (RESYNC, {"reason": "behind"})


def test_stream_ends_when_the_server_stops():
    buf = FeedBuffer(size=10, client_backlog=10, boot="b")

    async def main() -> list[str]:
        return [c async for c in feed_stream(buf, "b-0", lambda: True, poll_s=0.05)]

    assert asyncio.run(asyncio.wait_for(main(), 5)) == []
    assert not buf.active  # the stream unsubscribed


def test_batch_times_percentiles_over_the_window():
    now = [0.0]
    times = BatchTimes(window_s=300, clock=lambda: now[0])
    assert times.summary() == {"p50_ms": None, "p95_ms": None, "count": 0}
    for ms in range(1, 101):  # 1..100 ms
        times.record(ms / 1000)
    assert times.summary() == {"p50_ms": 50.0, "p95_ms": 95.0, "count": 100}
    now[0] = 301.0
    times.record(0.007)
    assert times.summary() == {"p50_ms": 7.0, "p95_ms": 7.0, "count": 1}


def test_publish_wakes_each_event_loop_once_and_encodes_the_frame_once():
    """Five streams on one loop: one wake-up (one write to its self-pipe) per message, made by the
    waker thread, and every stream is handed the same bytes."""
    class CountingLoop:
        def __init__(self) -> None:
            self.calls = 0
            self.woken = threading.Event()

        def call_soon_threadsafe(self, fn, *args):  # type: ignore[no-untyped-def]
            self.calls += 1
            fn(*args)
            self.woken.set()

    loop = CountingLoop()
    buf = FeedBuffer(size=10, client_backlog=10, boot="b")
    waiters = [buf.subscribe(loop)[0] for _ in range(5)]  # type: ignore[arg-type]
    msg = buf.publish(DELTA, {"i": 1})
    assert loop.woken.wait(30)  # by the waker thread, not by publish
    assert loop.calls == 1 and all(w.event.is_set() for w in waiters)
    assert msg.frame == b'id: b-1\nevent: delta\ndata: {"i":1}\n\n'
    assert buf.since(0).messages[0].frame is msg.frame
