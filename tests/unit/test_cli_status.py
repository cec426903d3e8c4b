"""`juqueue status`'s layout: the pure renderer against a recorded /api/status answer.

Golden file: tests/unit/golden/status_render.txt. After an intended layout change, rewrite it
with `JUQUEUE_UPDATE_GOLDEN=1 pytest tests/unit/test_cli_status.py` and review the diff.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from juqueue.cli.status import render_definition_errors, render_status
from support.golden import assert_matches_golden

GOLDEN = Path(__file__).parent / "golden"
ANSWER = json.loads((GOLDEN / "status_api.json").read_text())


def plain(renderable: object, width: int = 200) -> str:
    """What the CLI prints piped (no colours, 200 columns: juqueue.cli.plumbing.console)."""
    out = Console(file=io.StringIO(), width=width, highlight=False, color_system=None, force_terminal=False,
                  legacy_windows=False)
    out.print(renderable)
    return out.file.getvalue()  # type: ignore[attr-defined]


def test_status_matches_golden_file_line_by_line() -> None:
    got = plain(render_status(ANSWER))
    golden = GOLDEN / "status_render.txt"
    assert_matches_golden(got, golden)


def test_text_from_the_server_is_not_read_as_markup() -> None:
    """Reasons and errors are shown as sent: brackets in them are text, not styles."""
    out = plain(render_status(ANSWER))
    assert "[held] near the cap" in out and "[Errno 111]" in out
    errors = plain(render_definition_errors(ANSWER))
    assert errors.splitlines() == ["2 definition error(s):", "  bad.yaml: unknown cluster 'nope'",
                                   "  experiments/x.py: line 3: [bold]not markup[/bold]"]


def test_minimal_answer() -> None:
    """A store that cannot be read (no counts), no clusters, no definition errors."""
    answer = {"counts": None, "clusters": [], "definition_errors": [], "version": "1.0", "flower_url": None,
              "store_error": "store unavailable: refused"}
    assert plain(render_status(answer)).splitlines() == ["JuQueue 1.0", "store unavailable: refused"]
    assert render_definition_errors(answer) is None
