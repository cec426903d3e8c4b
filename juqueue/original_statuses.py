"""The original JuQueue's (0.0.15) run statuses, read from its work dir and mapped to ours.

The original kept `{"status": ..., "created_at": ...}` in each run's `juqueue-run.json`; `serve`
reads them once, when its store is new, so finished runs are not rerun and inactive ones stay
held (the controller applies them: `UserActions.adopt_original`). Reading is pure: the caller
decides what to do with what was found.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

from juqueue.paths import OriginalWorkDir

ORIGINAL_STATUS = {"finished": "completed", "failed": "failed", "inactive": "held", "ready": "queued"}


class OriginalStatuses(NamedTuple):
    """What the original JuQueue knew of each run: global id -> status ("completed",
    "failed", "held" or "queued"); a file that could not be read is not in `statuses` (its
    run is new) and has a warning naming it."""

    statuses: dict[str, str]
    warnings: list[str]


def original_run_statuses(work_dir: Path | str) -> OriginalStatuses:
    """Read every `W/<experiment>/<run>/juqueue-run.json` the original JuQueue wrote.

    The original kept `{"status": ..., "created_at": ...}` there, the status one of
    `finished`, `failed`, `inactive`, `ready` (a running run was saved as `ready`). They map
    to completed, failed, held and queued. Directories whose name starts with "." (JuQueue's
    own `W/.juqueue`) are skipped. Pure: reads files, changes nothing.
    """
    root = Path(work_dir)
    original = OriginalWorkDir(root)
    statuses: dict[str, str] = {}
    warnings: list[str] = []
    try:
        experiments = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return OriginalStatuses(statuses, warnings)
    for exp_dir in experiments:
        try:
            run_dirs = sorted(p for p in exp_dir.iterdir() if p.is_dir())
        except OSError as exc:
            warnings.append(f"{exp_dir}: cannot list it ({exc.strerror}); its runs start as new runs")
            continue
        for run_dir in run_dirs:
            path = original.run_status_file(exp_dir.name, run_dir.name)
            if not (path.exists() or path.is_symlink()):
                continue
            gid = f"{exp_dir.name}@{run_dir.name}"
            status, why = _read_original_status(path)
            if status is None:
                warnings.append(f"{path}: {why}; {gid} starts as a new run")
            else:
                statuses[gid] = status
    return OriginalStatuses(statuses, warnings)


def _read_original_status(path: Path) -> tuple[str | None, str]:
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"is not valid JSON ({exc})"
    if not isinstance(data, dict):
        return None, f"holds a {type(data).__name__}, not an object"
    raw = data.get("status")
    if raw not in ORIGINAL_STATUS:
        return None, f"has status {raw!r}, not one of {', '.join(ORIGINAL_STATUS)}"
    return ORIGINAL_STATUS[raw], ""


__all__ = ["ORIGINAL_STATUS", "OriginalStatuses", "original_run_statuses"]
