"""An attempt's stdout or stderr: a chunk from a byte offset (what `juqueue logs` polls), the
last bytes (`tail`), or the whole file as a download."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import FileResponse

from juqueue.api.auth import require_token
from juqueue.api.context import AppContext
from juqueue.api.deps import ContextDep
from juqueue.api.logs import MAX_LOG_CHUNK, MAX_LOG_OFFSET, read_chunk, size_of, tail_start
from juqueue.api.models.errors import error_responses
from juqueue.api.models.runs import LogChunkModel
from juqueue.api.routes.runs import get_run_row
from juqueue.status import RunStatus
from juqueue.store.tables import RunRow

router = APIRouter(prefix="/api/runs", tags=["runs"], dependencies=[Depends(require_token)],
                   responses=error_responses(401, 404, 422))

Attempt = Annotated[int | None, Query(ge=1, description="default: the latest attempt")]
Stream = Annotated[Literal["out", "err"], Query(description="stdout (out) or stderr (err)")]


def _attempt(row: RunRow, global_id: str, attempt: int | None) -> int:
    """The attempt asked for (default the latest; 0: not started yet), or 404 naming what exists."""
    number = attempt if attempt is not None else row.attempt
    if attempt is not None and number > row.attempt:
        have = f"attempts 1..{row.attempt}" if row.attempt else "no attempt yet"
        raise HTTPException(404, detail=f"run {global_id!r} has no attempt {number} ({have})")
    return number


@router.get("/{global_id}/logs", summary="A chunk of an attempt's stdout or stderr, from a byte offset or its end",
            response_model=LogChunkModel)
def get_logs(
    global_id: str,
    ctx: ContextDep,
    attempt: Attempt = None,
    stream: Stream = "out",
    offset: Annotated[int, Query(ge=0, le=MAX_LOG_OFFSET, description="the byte to start at")] = 0,
    max_bytes: Annotated[int, Query(ge=1, le=MAX_LOG_CHUNK, description="at most this many bytes")] = MAX_LOG_CHUNK,
    tail: Annotated[int | None, Query(ge=1, le=MAX_LOG_CHUNK, description="the last this many bytes instead "
                                                                          "(from the first whole character; `offset` is not used)")] = None,
) -> LogChunkModel:
    """Poll with `offset` = the previous answer's `next_offset`; `tail` gives the end of a large log."""
    row = get_run_row(ctx.store, global_id)
    number = _attempt(row, global_id, attempt)
    data, size = b"", 0
    if number >= 1:
        path = ctx.work.attempt_log(row.experiment, row.run_id, number, stream)
        size = size_of(path)
        if tail is not None:
            offset, max_bytes = tail_start(path, size, tail), tail
        data = read_chunk(path, offset, max_bytes)
    elif tail is not None:
        offset = 0
    return LogChunkModel(global_id=global_id, attempt=number, stream=stream, offset=offset,
                         next_offset=offset + len(data), size=size, text=data.decode("utf-8", errors="replace"),
                         latest_attempt=row.attempt, status=row.status, final=RunStatus(row.status).is_final)


@router.get("/{global_id}/logs/download", summary="An attempt's whole stdout or stderr as a file",
            response_class=FileResponse,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "the log (Content-Disposition: attachment)"},
                       404: {"description": "no such run, attempt or log file"}})
def download_logs(global_id: str, ctx: ContextDep, attempt: Attempt = None, stream: Stream = "out") -> FileResponse:
    return _download(ctx, global_id, attempt, stream)


def _download(ctx: AppContext, global_id: str, attempt: int | None, stream: str) -> FileResponse:
    row = get_run_row(ctx.store, global_id)
    number = _attempt(row, global_id, attempt)
    if number < 1:
        raise HTTPException(404, detail=f"run {global_id!r} has not started: no log yet")
    path = ctx.work.attempt_log(row.experiment, row.run_id, number, stream)
    if not path.is_file():
        raise HTTPException(404, detail=f"run {global_id!r} attempt {number} has no std{stream} file (yet)")
    name = f"{row.experiment}@{row.run_id}.attempt-{number}.{stream}.log"
    return FileResponse(path, media_type="text/plain; charset=utf-8", filename=name,
                        headers={"Cache-Control": "no-store"})
