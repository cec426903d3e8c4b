"""Helpers for definition files, as the original offered them (`from juqueue import DefUtils`)."""

from __future__ import annotations

import hashlib

__all__ = ["unique_hash"]


def unique_hash(string: str, length: int = 24) -> str:
    """The first `length` hex characters of the SHA-512 of `string` (UTF-8), 0 < length <= 128.

    The same function as the original's, so run ids built with it name the same directories."""
    if isinstance(length, bool) or not isinstance(length, int) or not 0 < length <= 128:
        raise ValueError(f"length must be an integer with 0 < length <= 128, got {length!r}")
    return hashlib.sha512(string.encode("utf-8")).hexdigest()[:length]
