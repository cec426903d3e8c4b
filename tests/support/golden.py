"""Golden files: an output compared with the file beside the tests, line by line (the first
differing line is named); `JUQUEUE_UPDATE_GOLDEN=1` writes the file from the output instead."""

from __future__ import annotations

import os
from pathlib import Path


def assert_matches_golden(got: str, golden: Path) -> None:
    if os.environ.get("JUQUEUE_UPDATE_GOLDEN"):
        golden.write_text(got)
    want = golden.read_text()
    for number, (g, w) in enumerate(zip(got.splitlines(), want.splitlines()), start=1):
        assert g == w, f"line {number} differs from {golden.name}"
    assert got == want
