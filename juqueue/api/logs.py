"""Reading an attempt's log files for the API: a chunk from an offset, the last bytes, the last
lines of a failed attempt's stderr. Reads never hold more than one chunk in memory."""

from __future__ import annotations

import os
from pathlib import Path

STDERR_TAIL_LINES = 50
_TAIL_READ = 64 * 1024  # bytes read from the end per step when looking for the last lines


MAX_LOG_CHUNK = 1 << 20  # the most one log request (or one feed message) carries
MAX_LOG_OFFSET = 1 << 62  # a file offset is a 64-bit integer: a larger one is refused (422), not a 500

def read_chunk(path: Path | str, offset: int, max_bytes: int) -> bytes:
    """Up to `max_bytes` from `offset`, without a multi-byte character cut at the end; b"" when
    the file does not exist (yet) or ends before `offset`."""
    try:
        with open(path, "rb") as fh:
            if offset >= os.fstat(fh.fileno()).st_size:
                return b""  # past the end (seek itself refuses offsets past the file system's limit)
            fh.seek(offset)
            return whole_utf8(fh.read(max_bytes))
    except FileNotFoundError:
        return b""


def size_of(path: Path | str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def tail_start(path: Path | str, size: int, tail: int) -> int:
    """Where the last `tail` bytes begin, moved past UTF-8 continuation bytes so the text starts
    with a whole character."""
    start = max(0, size - tail)
    if start == 0:
        return 0
    try:
        with open(path, "rb") as fh:
            fh.seek(start)
            head = fh.read(4)
    except FileNotFoundError:
        return start
    skip = 0
    while skip < len(head) and 0x80 <= head[skip] < 0xC0:
        skip += 1
    return start + skip


def stderr_tail(path: Path | str, lines: int = STDERR_TAIL_LINES) -> list[str]:
    """The last `lines` lines of a log (what a failed attempt said last); [] without a file."""
    try:
        with open(path, "rb") as fh:
            end = fh.seek(0, os.SEEK_END)
            start, data = end, b""
            while start > 0 and data.count(b"\n") <= lines:
                step = min(_TAIL_READ, start)
                start -= step
                fh.seek(start)
                data = fh.read(step) + data
    except FileNotFoundError:
        return []
    return data.decode("utf-8", errors="replace").splitlines()[-lines:]


def whole_utf8(data: bytes) -> bytes:
    """Drop a multi-byte character cut at the end; the next poll reads it whole."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:
            return data
        if byte >= 0xC0:  # a lead byte: is its sequence complete?
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return data if back >= need else data[:-back]
    return data
