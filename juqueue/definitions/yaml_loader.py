"""YAML experiment files: the same fields as `RunDef`, plus a `matrix:` sweep.

The schema is documented in README_schema.md. The top level holds the experiment's name
and defaults for its runs; `runs:` lists runs (each may sweep its own `matrix:`), or, without
`runs:`, the top level itself is one run entry (`id:` plus optional `matrix:`).
"""

from __future__ import annotations

import itertools
import re
import shlex
import string
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from juqueue.definitions.original_api import ExecutorDef, RunDef
from juqueue.definitions.validation import FileResult, errors_from_validation, short_repr

SKIP_DIRS = {"__pycache__", "node_modules"}
# libyaml's parser when PyYAML has it: the same safe types, 50 times faster on a 10 MB string
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_MATRIX_RUNS = 100_000  # runs one matrix entry may expand to: more is a typo, and would exhaust memory
MAX_FORMAT_WIDTH = 255  # an id template's field width or precision: a run id is a directory name
CLUSTERS_FILE = "clusters.yaml"

_RUN_FIELDS = ("cluster", "cmd", "parameters", "parameter_format", "executor", "depends_on", "max_retries",
               "movable", "duration", "hold", "slots", "checkpoint_interval", "restart_cost", "checkpoint_on_term",
               "priority")


class RunEntry(BaseModel):
    """One entry of `runs:`; unset fields come from the file's top level."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    cluster: str | None = None
    cmd: list[Any] | str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    parameter_format: Literal["argparse", "eq"] | None = None
    executor: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[str] | str | None = None
    max_retries: int | None = Field(None, ge=0)
    movable: bool | None = None
    duration: float | str | None = None
    hold: bool | None = None  # new runs start `held` (until `juqueue release`)
    slots: int | None = Field(None, ge=1)  # slots of one node the run needs (default 1)
    checkpoint_interval: float | str | None = None  # seconds or HH:MM:SS; default: the cluster's
    restart_cost: float | str | None = None
    checkpoint_on_term: bool | None = None
    priority: int | None = None  # queue order: higher starts first (default 0)
    matrix: dict[str, list[Any]] | None = None


class ExperimentFile(RunEntry):
    """The whole file: the experiment's name, defaults, and its runs."""

    experiment: str
    runs: list[RunEntry] | None = None
    budget_node_hours: float | None = Field(None, gt=0)  # no node starts for its runs past it


def yaml_files(def_dir: Path) -> list[Path]:
    """YAML experiment files anywhere in the def dir, hidden directories and clusters.yaml skipped."""
    out = []
    for path in sorted(def_dir.rglob("*")):
        rel = path.relative_to(def_dir)
        if path.suffix not in (".yaml", ".yml") or not path.is_file():
            continue
        if any(part.startswith(".") or part in SKIP_DIRS for part in rel.parts):
            continue
        if rel.as_posix() in (CLUSTERS_FILE, "clusters.yml"):
            continue
        out.append(path)
    return out


def _template_keys(template: str) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]


def _template_error(template: str) -> str | None:
    """Why the id template cannot be formatted safely (a bad brace, a width that builds a huge id)."""
    try:
        specs = [spec or "" for _, f, spec, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        return f"id template {short_repr(template)}: {exc}"
    for spec in specs:
        if any(int(n) > MAX_FORMAT_WIDTH for n in re.findall(r"\d+", spec)):
            return f"id template {short_repr(template)}: format width or precision over {MAX_FORMAT_WIDTH} in {{:{spec[:40]}}}"
    return None


def _matrix_size(matrix: dict[str, list[Any]]) -> int:
    size = 1
    for values in matrix.values():
        size *= len(values)
    return size


def expand_matrix(matrix: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Cartesian product of the matrix's lists, in key order; `{}` gives one empty combination."""
    keys = list(matrix)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(matrix[k] for k in keys))]


def _merge(defaults: RunEntry, entry: RunEntry) -> dict[str, Any]:
    """Entry fields over the defaults; parameters and executor merge key by key."""
    out: dict[str, Any] = {}
    for name in _RUN_FIELDS:
        value = getattr(entry, name) if name in entry.model_fields_set else None
        out[name] = value if value is not None else getattr(defaults, name)
    out["parameters"] = {**defaults.parameters, **entry.parameters}
    out["executor"] = {**defaults.executor, **entry.executor}
    return out


def _entry_runs(fr: FileResult, name: str, defaults: RunEntry, entry: RunEntry, where: str) -> None:
    fields = _merge(defaults, entry)
    if entry.id is None:
        fr.error("missing required field", field_=f"{where}id")
        return
    if entry.matrix is not None:
        if not entry.matrix:
            fr.error("matrix is empty", field_=f"{where}matrix")
            return
        empty = [k for k, v in entry.matrix.items() if not v]
        if empty:
            fr.error(f"matrix list {short_repr(empty[0])} is empty", field_=f"{where}matrix.{empty[0]}")
            return
        size = _matrix_size(entry.matrix)
        if size > MAX_MATRIX_RUNS:
            fr.error(f"matrix expands to {size:,} runs, more than {MAX_MATRIX_RUNS:,}", field_=f"{where}matrix")
            return
        bad = _template_error(entry.id)
        if bad:
            fr.error(bad, field_=f"{where}id")
            return
        missing = [k for k, v in entry.matrix.items() if len(v) > 1 and k not in _template_keys(entry.id)]
        if missing:
            fr.error(f"id template {short_repr(entry.id)} does not use matrix key(s) {', '.join(missing)}; "
                     "run ids would repeat", field_=f"{where}id")
            return
    combos = expand_matrix(entry.matrix) if entry.matrix is not None else [{}]
    for combo in combos:
        run_id = entry.id
        if entry.matrix is not None:
            try:
                run_id = entry.id.format(**combo)
            except (KeyError, IndexError, ValueError) as exc:
                fr.error(f"id template {short_repr(entry.id)}: unknown or bad field {exc}", field_=f"{where}id")
                return
        _add_run(fr, name, run_id, fields, combo, where)


def _add_run(fr: FileResult, name: str, run_id: str, fields: dict[str, Any], combo: dict[str, Any],
             where: str) -> None:
    cmd = fields["cmd"]
    if isinstance(cmd, str):
        cmd = shlex.split(cmd)
    deps = fields["depends_on"] or []
    if isinstance(deps, str):
        deps = [deps]
    if fields["cluster"] is None or cmd is None:
        missing = "cluster" if fields["cluster"] is None else "cmd"
        fr.error("missing required field", run=run_id, field_=f"{where}{missing}")
        return
    try:
        run = RunDef(
            id=run_id, experiment_name=name, cluster=fields["cluster"], cmd=cmd,
            parameters={**fields["parameters"], **combo},
            parameter_format=fields["parameter_format"] or "argparse",
            executor=ExecutorDef(**fields["executor"]),
            depends_on=deps, max_retries=fields["max_retries"] or 0,
            movable=True if fields["movable"] is None else fields["movable"], duration=fields["duration"],
            hold=bool(fields["hold"]), slots=fields["slots"] or 1,
            checkpoint_interval=fields["checkpoint_interval"], restart_cost=fields["restart_cost"],
            checkpoint_on_term=fields["checkpoint_on_term"], priority=fields["priority"],
        )
        fr.runs.append(run.to_spec(source_file=fr.file))
    except ValidationError as exc:
        prefix = f"{where}executor." if exc.title == "ExecutorDef" else where
        fr.errors.extend(errors_from_validation(fr.file, exc, run=run_id, prefix=prefix))
    except (ValueError, TypeError) as exc:
        fr.error(str(exc), run=run_id)


def load_yaml_file(def_dir: Path, path: Path) -> FileResult:
    """One YAML experiment file as a FileResult (errors included)."""
    fr = FileResult(file=path.relative_to(def_dir).as_posix())
    try:
        data = yaml.load(path.read_text(), Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        fr.error(f"YAML syntax error{line}: {getattr(exc, 'problem', None) or exc}")
        return fr
    except (OSError, UnicodeDecodeError) as exc:
        fr.error(f"cannot read: {exc}")
        return fr
    except RecursionError:
        fr.error("nested too deeply to read")
        return fr
    try:
        return _load_document(fr, data)
    except RecursionError:  # a structure too deep (or cyclic, through anchors) to validate
        return _failed_deep(fr)


def _failed_deep(fr: FileResult) -> FileResult:
    fr.runs.clear()
    fr.error("nested too deeply to validate (or refers to itself through an anchor)")
    return fr


def _load_document(fr: FileResult, data: Any) -> FileResult:
    if not isinstance(data, dict):
        fr.error("not a mapping (expected 'experiment:', runs and defaults)")
        return fr
    if isinstance(data.get("experiment"), str):
        fr.experiments.append(data["experiment"])
    try:
        doc = ExperimentFile.model_validate(data)
    except ValidationError as exc:
        fr.errors.extend(errors_from_validation(fr.file, exc))
        return fr
    if doc.budget_node_hours is not None:
        fr.budgets[doc.experiment] = doc.budget_node_hours
    if doc.runs is None:
        _entry_runs(fr, doc.experiment, doc, doc, "")
        return fr
    if doc.id is not None or doc.matrix is not None:
        fr.error("top-level 'id'/'matrix' cannot be combined with 'runs:'; move them into a run entry",
                 field_="id" if doc.id is not None else "matrix")
        return fr
    for i, entry in enumerate(doc.runs):
        _entry_runs(fr, doc.experiment, doc, entry, f"runs.{i}.")
    return fr


def load_yaml_experiments(def_dir: Path) -> list[FileResult]:
    """Every YAML experiment file of `def_dir`."""
    return [load_yaml_file(def_dir, p) for p in yaml_files(def_dir)]
