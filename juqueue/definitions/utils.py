"""Helpers for definition files, as the original offered them (`from juqueue import DefUtils`)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["unique_hash", "checkpointed", "CHECKPOINT_ENV"]

CHECKPOINT_ENV = "JUQUEUE_CHECKPOINT_FILE"  # set by the worker for each attempt


def unique_hash(string: str, length: int = 24) -> str:
    """The first `length` hex characters of the SHA-512 of `string` (UTF-8), 0 < length <= 128.

    The same function as the original's, so run ids built with it name the same directories."""
    if isinstance(length, bool) or not isinstance(length, int) or not 0 < length <= 128:
        raise ValueError(f"length must be an integer with 0 < length <= 128, got {length!r}")
    return hashlib.sha512(string.encode("utf-8")).hexdigest()[:length]


def checkpointed() -> bool:
    """Tell JuQueue the run has just saved its state: touch `$JUQUEUE_CHECKPOINT_FILE`.

    Call it right after writing a checkpoint; consolidation then counts only the work since
    (moving the run loses little). False when the run was not started by JuQueue (the variable
    is unset) or the file cannot be touched; never raises, so a run works outside JuQueue too."""
    path = os.environ.get(CHECKPOINT_ENV)
    if not path:
        return False
    try:
        Path(path).touch()
    except OSError:
        return False
    return True
