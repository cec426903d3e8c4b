"""Directory placeholders in commands, parameters and executor fields (pure).

A definition never knows the work dir: paths into it are placeholders resolved when an
attempt is published (`juqueue/controller/publisher.py`) or by `RunDef.parsed_cmd(work_dir)`.

| placeholder | resolves to |
| --- | --- |
| `{run_dir}` / `{log_dir}` | the directory / log directory of the run whose command holds it |
| `{experiment_dir}` | the directory of that run's experiment |
| `{work_dir}` | the work dir |
| `{run_dir:E@R}` / `{log_dir:E@R}` | run R of experiment E (another run's `RunDef.path`) |
| `{experiment_dir:E}` | experiment E's directory (another experiment's `ExperimentDef.path`) |

E and R are percent-encoded in the named forms. `RunDef.to_spec` turns named forms that
point at the run itself (or its experiment) into the short forms, so a run's own paths keep
the spelling (and fingerprint) they always had.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote, unquote

from juqueue.paths import WorkDir

RUN_DIR = "{run_dir}"
LOG_DIR = "{log_dir}"
EXPERIMENT_DIR = "{experiment_dir}"
WORK_DIR = "{work_dir}"

_PATTERN = re.compile(
    r"\{(?:(?P<kind>run_dir|log_dir)(?::(?P<exp>[^{}@:]*)@(?P<run>[^{}@:]*))?"
    r"|(?P<xdir>experiment_dir)(?::(?P<xname>[^{}@:]*))?"
    r"|(?P<wdir>work_dir))\}"
)


def _q(text: str) -> str:
    return quote(str(text), safe="")


def run_dir_of(experiment: str, run_id: str) -> str:
    return f"{{run_dir:{_q(experiment)}@{_q(run_id)}}}"


def log_dir_of(experiment: str, run_id: str) -> str:
    return f"{{log_dir:{_q(experiment)}@{_q(run_id)}}}"


def experiment_dir_of(experiment: str) -> str:
    return f"{{experiment_dir:{_q(experiment)}}}"


def as_own(value: str, experiment: str, run_ids: tuple[str, ...]) -> str:
    """Named forms that point at one of `run_ids` of `experiment` (or at `experiment`) become
    the short forms. `run_ids` holds the run's id, and the id of the template it was forked from."""
    if "{" not in value:
        return value
    for run_id in run_ids:
        value = value.replace(run_dir_of(experiment, run_id), RUN_DIR)
        value = value.replace(log_dir_of(experiment, run_id), LOG_DIR)
    return value.replace(experiment_dir_of(experiment), EXPERIMENT_DIR)


def experiment_dir(work: WorkDir, experiment: str) -> Path:
    """The experiment's directory: the parent of its runs' directories, whatever the layout."""
    return work.run_dir(experiment, "_").parent


def resolve(value: str, work: WorkDir, experiment: str, run_id: str) -> str:
    """Every placeholder in `value` replaced by its path, for run `run_id` of `experiment`.
    One pass: text that a replacement brings in is never replaced again."""
    if "{" not in value:
        return value

    def one(m: re.Match) -> str:
        if m.group("wdir"):
            return str(work.root)
        if m.group("xdir"):
            name = m.group("xname")
            return str(experiment_dir(work, experiment if name is None else unquote(name)))
        exp, run = (experiment, run_id) if m.group("exp") is None else (unquote(m.group("exp")), unquote(m.group("run")))
        return str(work.run_dir(exp, run) if m.group("kind") == "run_dir" else work.log_dir(exp, run))

    return _PATTERN.sub(one, value)
