"""An exclusive, non-blocking flock that names its holder.

flock does not cross hosts on every parallel file system, so the holder writes its host and
pid into the file: whoever is refused can say who holds it, and a human can check."""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path
from typing import IO, Callable


def acquire_flock(path: Path, refused: Callable[[str], Exception], *, record_holder: bool = True) -> IO[str]:
    """Lock `path` (created if missing) and return its open file, the lock's handle. Held
    elsewhere: raise `refused(holder)`, holder being the file's text or "another process".
    With `record_holder`, this process writes `host=... pid=...` into it."""
    fh = open(path, "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "another process"
        fh.close()
        raise refused(holder) from None
    if record_holder:
        fh.seek(0)
        fh.truncate()
        fh.write(f"host={socket.gethostname()} pid={os.getpid()}\n")
        fh.flush()
    return fh


def release_flock(fh: IO[str]) -> None:
    """Unlock and close what `acquire_flock` returned."""
    fcntl.flock(fh, fcntl.LOCK_UN)
    fh.close()
