"""Loads `experiments/*.py` of a def dir, the original JuQueue's layout.

Files are imported as `experiments.<stem>` with the def dir on `sys.path` (as the original
did), so helper modules beside them import. Only the class named `Experiment` in a file is
an experiment (the original's rule). Every exception, `sys.exit` included, becomes a
`DefinitionError` of that file with its line; the other files keep loading. Run this only
inside the evaluator subprocess (it imports user code).
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import traceback
from pathlib import Path
from types import ModuleType

from pydantic import ValidationError

from juqueue.definitions.original_api import ExperimentDef, RunDef
from juqueue.definitions.validation import FileResult, errors_from_validation

PACKAGE = "experiments"


def python_files(def_dir: Path) -> list[Path]:
    """Experiment files in load order; `_*.py` and `.*.py` are helpers/hidden (original rule)."""
    exp_dir = def_dir / PACKAGE
    if not exp_dir.is_dir():
        return []
    return sorted(p for p in exp_dir.glob("*.py") if not p.name.startswith((".", "_")))


def _where(exc: BaseException, path: Path) -> str:
    """' (line N)' of the deepest frame in `path`, else of the deepest frame."""
    if isinstance(exc, SyntaxError) and exc.lineno:
        return f" (line {exc.lineno})"
    frames = traceback.extract_tb(exc.__traceback__)
    target = str(path.resolve())
    mine = [f for f in frames if f.filename and str(Path(f.filename).resolve()) == target]
    frame = (mine or frames or [None])[-1]
    if frame is None:
        return ""
    if mine:
        return f" (line {frame.lineno})"
    return f" ({frame.filename}, line {frame.lineno})"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"sys.exit({exc.code!r}) called while loading"
    return f"{type(exc).__name__}: {exc}"


def _experiment_class(fr: FileResult, module: ModuleType) -> type | None:
    """The class named `Experiment` (the original's rule); other ExperimentDef subclasses in
    the file are bases or helpers. None, with an error on `fr`, when there is no usable one."""
    cls = getattr(module, "Experiment", None)
    if cls is None:
        others = sorted(name for name, obj in vars(module).items()
                        if inspect.isclass(obj) and issubclass(obj, ExperimentDef) and obj is not ExperimentDef
                        and obj.__module__ == module.__name__)
        hint = (f"; it has ExperimentDef subclasses {', '.join(others)}: name the experiment's class Experiment"
                if others else "")
        fr.error("defines no class named Experiment (only the class named Experiment is an experiment; "
                 f"other ExperimentDef subclasses are bases or helpers){hint}")
        return None
    if not inspect.isclass(cls):
        fr.error(f"Experiment is a {type(cls).__name__}, not a class")
        return None
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ()))) or "?"
        fr.error(f"class Experiment is abstract: it does not implement {missing}")
        return None
    return cls


# Experiment attributes that are defaults of its runs (a run's own value wins)
CHECKPOINT_KEYS = ("checkpoint_interval", "restart_cost", "checkpoint_on_term", "priority")


def _collect(fr: FileResult, path: Path, module: ModuleType) -> None:
    cls = _experiment_class(fr, module)
    if cls is None:
        return
    stage = "Experiment()"
    try:
        xp = cls()
        stage = "Experiment.name"
        name = xp.name
        fr.experiments.append(name)
        stage = "Experiment.budget_node_hours"
        budget = getattr(xp, "budget_node_hours", None)
        stage = "Experiment.hold"
        hold = bool(getattr(xp, "hold", False))
        stage = "Experiment.checkpoint_interval/restart_cost/checkpoint_on_term/priority"
        costs = {k: getattr(xp, k, None) for k in CHECKPOINT_KEYS}
        stage = "Experiment.runs"
        runs = list(xp.runs)
    except ValidationError as exc:
        for err in errors_from_validation(fr.file, exc):
            err.message = f"{stage}: {err.message}{_where(exc, path)}"
            fr.errors.append(err)
        return
    except (Exception, SystemExit) as exc:
        fr.error(f"{stage}: {_describe(exc)}{_where(exc, path)}")
        return
    if budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget <= 0:
            fr.error(f"budget_node_hours must be a number > 0, got {budget!r}", field_="budget_node_hours")
            return
        fr.budgets[name] = float(budget)
    costs = {k: v for k, v in costs.items() if v is not None}
    if costs:
        try:  # validated as a run's own values would be
            costs = RunDef.model_validate({"id": "x", "experiment_name": name, "cluster": "x", "cmd": [], **costs}) \
                .model_dump(include=set(costs))
        except ValidationError as exc:
            fr.errors.extend(errors_from_validation(fr.file, exc))
            return
    for i, run in enumerate(runs):
        if hold and isinstance(run, RunDef) and not run.hold:
            run = run.model_copy(update={"hold": True})  # the experiment's `hold` holds all its runs
        unset = {k: v for k, v in costs.items() if isinstance(run, RunDef) and getattr(run, k) is None}
        if unset:
            run = run.model_copy(update=unset)  # the experiment's values for runs that set none
        if not isinstance(run, RunDef):
            fr.error(f"runs[{i}] is a {type(run).__name__}, not a RunDef", field_="runs")
            continue
        if run.is_abstract:
            continue  # templates are never executed
        if run.experiment_name != name:
            fr.error(f"experiment_name {run.experiment_name!r} differs from the experiment's name {name!r}",
                     run=run.id, field_="experiment_name")
            continue
        try:
            fr.runs.append(run.to_spec(source_file=fr.file))
        except ValidationError as exc:
            fr.errors.extend(errors_from_validation(fr.file, exc, run=run.id))
        except (ValueError, TypeError) as exc:
            fr.error(str(exc), run=run.id)


def load_python_file(def_dir: Path, path: Path) -> FileResult:
    """Import one experiment file and collect the runs of its class `Experiment`."""
    fr = FileResult(file=path.relative_to(def_dir).as_posix())
    modname = f"{PACKAGE}.{path.stem}"
    sys.modules.pop(modname, None)
    try:
        module = importlib.import_module(modname)
    except ValidationError as exc:
        for err in errors_from_validation(fr.file, exc):
            err.message += _where(exc, path)
            fr.errors.append(err)
        return fr
    except (Exception, SystemExit) as exc:
        fr.error(f"{_describe(exc)}{_where(exc, path)}")
        return fr
    try:
        _collect(fr, path, module)
    except (Exception, SystemExit) as exc:  # beyond what _collect names itself: a run too deep to validate, ...
        fr.runs.clear()
        fr.error(f"{_describe(exc)}{_where(exc, path)}")
    return fr


def forget_user_modules(def_dir: Path) -> None:
    """Drop cached modules from the def dir so a later load (tests, same process) is fresh."""
    root = str(def_dir.resolve()) + os.sep
    for name, mod in list(sys.modules.items()):
        if name == "juqueue" or name.startswith("juqueue."):
            continue  # a def dir inside a source checkout must not reload JuQueue itself
        file = getattr(mod, "__file__", None) or ""
        paths = list(getattr(mod, "__path__", []) or [])
        if name == PACKAGE or name.startswith(PACKAGE + ".") or file.startswith(root) \
                or any(str(p).startswith(root) for p in paths):
            sys.modules.pop(name, None)


def load_python_experiments(def_dir: Path) -> list[FileResult]:
    """Every `experiments/*.py` of `def_dir`, each a FileResult (errors included)."""
    files = python_files(def_dir)
    if not files:
        return []
    entry = str(def_dir.resolve())
    forget_user_modules(def_dir)
    importlib.invalidate_caches()
    sys.path.insert(0, entry)
    try:
        return [load_python_file(def_dir, p) for p in files]
    finally:
        try:
            sys.path.remove(entry)
        except ValueError:
            pass
        forget_user_modules(def_dir)
