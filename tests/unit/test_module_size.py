"""No module of JuQueue over 350 lines: a module that size does more than one thing; split it by responsibility."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCES = (REPO / "juqueue", REPO / "workers")
MAX_LINES = 350

# Modules allowed over the limit, as {"path/from/repo/root.py": its line count when it was allowed,
# with the reason in a comment}. A listed module may shrink but not grow. Keep it empty: split instead.
ALLOWED: dict[str, int] = {}


def line_counts() -> dict[str, int]:
    return {str(path.relative_to(REPO)): len(path.read_text().splitlines())
            for root in SOURCES for path in sorted(root.rglob("*.py"))}


def test_no_module_over_the_limit() -> None:
    counts = line_counts()
    assert len(counts) > 20, f"modules not found under {SOURCES}"
    over = {path: n for path, n in counts.items() if n > max(MAX_LINES, ALLOWED.get(path, 0))}
    listed = "\n".join(f"  {path}: {n} lines" for path, n in sorted(over.items(), key=lambda item: -item[1]))
    assert not over, f"modules over {MAX_LINES} lines (split them by responsibility):\n{listed}"


def test_the_allowlist_names_only_modules_that_need_it() -> None:
    counts = line_counts()
    stale = {path: counts.get(path) for path in ALLOWED if counts.get(path, 0) <= MAX_LINES}
    assert not stale, f"allowlisted modules that are gone or back under {MAX_LINES} lines; remove them: {stale}"
