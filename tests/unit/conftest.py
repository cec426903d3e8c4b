"""Fixtures the controller's unit tests share."""

from __future__ import annotations

import pytest

from controller_fakes import Harness, build_harness


@pytest.fixture
def make(tmp_path):
    """Build controller harnesses on a real SQLite store in tmp_path; all closed afterwards."""
    made: list[Harness] = []

    def build(clusters, runs, **kw) -> Harness:
        h = build_harness(tmp_path, clusters, runs, **kw)
        made.append(h)
        return h

    yield build
    for h in made:
        h.close()
