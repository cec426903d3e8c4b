"""Polling for a condition instead of sleeping a fixed time: a test waits only as long as it must."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(what: str, check: Callable[[], T], timeout: float, interval: float = 0.3,
               detail: Callable[[], str] = lambda: "", error: type[Exception] = AssertionError) -> T:
    """`check()`'s first truthy value; `error` naming `what` (and `detail()`) after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    extra = detail()
    raise error(f"timed out after {timeout:g} s waiting for {what}" + (f"\n{extra}" if extra else ""))
