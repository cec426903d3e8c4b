"""The live feed as server-sent events: `GET /api/events` (what changed, per controller batch)
and `GET /api/events/log` (one run's log, followed until the run is final).

A stream only reads: the messages are built and serialized once per batch on the controller
thread (`juqueue.controller.feed`) and kept in a shared ring (`juqueue.controller.feed_buffer`);
each stream holds a cursor into it and waits on an asyncio.Event the controller sets through
`loop.call_soon_threadsafe`, so the controller never waits for a stream and a stream never
holds the controller. A stream also wakes every `POLL_S` to end when the server stops (uvicorn
waits for open responses before it exits; its graceful-shutdown timeout is the backstop).
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, AsyncIterator, Callable, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query
from fastapi.responses import StreamingResponse

from juqueue.api.auth import require_token
from juqueue.api.context import AppContext
from juqueue.api.deps import ContextDep
from juqueue.api.logs import MAX_LOG_CHUNK, whole_utf8
from juqueue.controller.feed_buffer import HELLO, RESYNC, FeedBuffer, sse_text
from juqueue.status import RunStatus

router = APIRouter(prefix="/api/events", tags=["events"], dependencies=[Depends(require_token)])

KEEPALIVE_S = 15.0  # a comment line this often keeps proxies and idle-connection timers quiet
POLL_S = 0.5  # how often a waiting stream looks whether the server is stopping
LOG_POLL_S = 0.5  # how often a followed log is read again
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_EVENT_STREAM = {"text/event-stream": {"schema": {"type": "string"}}}


def sse(event: str, data: str, event_id: str | None = None) -> str:
    """One SSE message (`data` is one line of JSON)."""
    return sse_text(event, data, event_id)


@router.get("", summary="The live feed (server-sent events): what changed, one message per controller batch",
            response_class=StreamingResponse, responses={200: {"content": _EVENT_STREAM}})
async def events(ctx: ContextDep, last_event_id: Annotated[str | None, Header(
        description="the id of the last message received (EventSource sends it when it reconnects)")] = None
                 ) -> StreamingResponse:
    """Event types: `hello` (on connect, with the current id), `delta` (what a batch changed:
    runs, nodes, counts, usage), `resync` (refetch everything: you fell behind, your
    `Last-Event-ID` is gone from the buffer, or the runs changed outside a batch)."""
    buffer = ctx.controller.feed.buffer
    return StreamingResponse(feed_stream(buffer, last_event_id, ctx.stopping), media_type="text/event-stream",
                             headers=SSE_HEADERS)


async def feed_stream(buffer: FeedBuffer, last_event_id: str | None, stopping: Callable[[], bool],
                      keepalive_s: float = KEEPALIVE_S, poll_s: float = POLL_S) -> AsyncIterator[bytes]:
    """The messages after the client's cursor, as they come, until the server stops. Deltas are
    the frames the buffer encoded once; this only writes them."""
    loop = asyncio.get_running_loop()
    waiter, current = buffer.subscribe(loop)
    try:
        cursor = buffer.parse_id(last_event_id) if last_event_id is not None else None
        if cursor is None:
            cursor = current
            if last_event_id is None:  # a new client: the id to come back with
                hello = {"id": buffer.format_id(current), "client_backlog": buffer.client_backlog}
                yield sse(HELLO, json.dumps(hello), buffer.format_id(current)).encode()
            else:  # another server's id, or not one of ours
                yield sse(RESYNC, json.dumps({"reason": "unknown id"}), buffer.format_id(current)).encode()
        quiet_since = loop.time()
        while not stopping():
            waiter.event.clear()  # before reading: a message appended after this sets it again
            catchup = buffer.since(cursor)
            if catchup.resync is not None:
                yield sse(RESYNC, json.dumps({"reason": catchup.resync}), buffer.format_id(catchup.last)).encode()
                cursor, quiet_since = catchup.last, loop.time()
                continue
            for msg in catchup.messages:
                yield msg.frame
                cursor, quiet_since = msg.n, loop.time()
            if catchup.messages:
                continue
            if loop.time() - quiet_since >= keepalive_s:
                yield b": keep-alive\n\n"
                quiet_since = loop.time()
            try:
                await asyncio.wait_for(waiter.event.wait(), poll_s)
            except asyncio.TimeoutError:
                pass
    finally:
        buffer.unsubscribe(waiter)


@router.get("/log", summary="Follow one run's stdout or stderr (server-sent events) until the run is final",
            response_class=StreamingResponse, responses={200: {"content": _EVENT_STREAM}})
async def follow_log(ctx: ContextDep,
                     run: Annotated[str, Query(description="the run's global id (experiment@run)")],
                     log: Annotated[Literal["out", "err"], Query(description="stdout or stderr")] = "out",
                     last_event_id: Annotated[str | None, Header(description="`<attempt>:<offset>` to resume from")] = None,
                     ) -> StreamingResponse:
    """Event types: `log` (`attempt`, `offset`, `next_offset`, `text`; each new attempt starts at
    offset 0), `end` (the run is final and its log read to the end; close the EventSource, or it
    reconnects)."""
    row = await asyncio.to_thread(ctx.store.get_run, run)
    if row is None:
        raise HTTPException(404, detail=f"no run with global id {run!r} (global ids look like 'experiment@run')")
    attempt, offset = _resume_point(last_event_id)
    return StreamingResponse(log_stream(ctx, run, log, attempt, offset), media_type="text/event-stream",
                             headers=SSE_HEADERS)


def _resume_point(last_event_id: str | None) -> tuple[int | None, int]:
    attempt, sep, offset = (last_event_id or "").partition(":")
    if sep and attempt.isdigit() and offset.isdigit():
        return int(attempt), int(offset)
    return None, 0


async def log_stream(ctx: AppContext, gid: str, stream: str, attempt: int | None, offset: int,
                     keepalive_s: float = KEEPALIVE_S, poll_s: float = LOG_POLL_S) -> AsyncIterator[str]:
    """What `juqueue logs --follow` prints: the latest attempt's log, then each newer attempt's."""
    loop = asyncio.get_running_loop()
    quiet_since = loop.time()
    while not ctx.stopping():
        latest, status, data = await asyncio.to_thread(_read, ctx, gid, attempt, stream, offset)
        if attempt is None or attempt < 1:
            attempt = latest
        if data:
            payload = {"attempt": attempt, "offset": offset, "next_offset": offset + len(data),
                       "text": data.decode("utf-8", errors="replace")}
            offset += len(data)
            yield sse("log", json.dumps(payload), f"{attempt}:{offset}")
            quiet_since = loop.time()
            continue
        if latest > (attempt or 0):  # a newer attempt: follow it from its start
            attempt, offset = latest, 0
            continue
        if status is None or RunStatus(status).is_final:
            yield sse("end", json.dumps({"attempt": attempt, "status": status}), f"{attempt}:{offset}")
            return
        if loop.time() - quiet_since >= keepalive_s:
            yield ": keep-alive\n\n"
            quiet_since = loop.time()
        await asyncio.sleep(poll_s)


def _read(ctx: AppContext, gid: str, attempt: int | None, stream: str, offset: int) -> tuple[int, str | None, bytes]:
    """The run's latest attempt and status, and its log from `offset` (at most MAX_LOG_CHUNK, whole characters)."""
    row = ctx.store.get_run(gid)
    if row is None:
        return 0, None, b""
    number = attempt if attempt is not None and attempt >= 1 else row.attempt
    if number < 1:
        return row.attempt, row.status, b""
    try:
        with open(ctx.work.attempt_log(row.experiment, row.run_id, number, stream), "rb") as fh:
            fh.seek(offset)
            return row.attempt, row.status, whole_utf8(fh.read(MAX_LOG_CHUNK))
    except FileNotFoundError:
        return row.attempt, row.status, b""
