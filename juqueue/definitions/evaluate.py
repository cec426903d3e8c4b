"""The evaluator: evaluates a def dir in this process, or, as a subprocess, file by file.

Python definition files are user code: the controller only ever calls `load_definitions`
(`juqueue.definitions.subprocess_eval`), which runs `python -m juqueue.definitions.evaluate
DEF_DIR --each` in its own process group, so an import cache, a `sys.exit` or an endless loop
never touches the controller. With `--each` the files to evaluate come on stdin, one relative
path a line, and the real stdout carries one JSON line per step: `{"ready": true}` once
imported, `{"start": FILE}` before a file, `{"done": FILE, "result": FileResult}` after it, so
the parent can give every file its own timeout and name the one that hangs. Without `--each`
it prints the whole LoadResult as JSON. Either way the user code's own output goes to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path
from typing import IO

from juqueue.definitions.models import DefinitionError, LoadResult
from juqueue.definitions.python_loader import forget_user_modules, load_python_experiments, load_python_file
from juqueue.definitions.subprocess_eval import load_definitions  # noqa: F401  (callers have always found it here)
from juqueue.definitions.validation import FILE_RESULT, combine
from juqueue.definitions.yaml_loader import load_yaml_experiments, load_yaml_file


def _aborted(def_dir: Path, message: str) -> LoadResult:
    return LoadResult(aborted=True, errors=[DefinitionError(file=str(def_dir), message=message)])


def evaluate_def_dir(def_dir: Path, cluster_names: set[str] | None) -> LoadResult:
    """Load and validate every YAML and Python definition file in this process.

    `cluster_names` None skips the unknown-cluster check. Imports user code: call it only in
    a process that may be harmed (the evaluator subprocess, tests).
    """
    def_dir = Path(def_dir)
    if not def_dir.is_dir():
        return _aborted(def_dir, "definition directory does not exist")
    files = load_yaml_experiments(def_dir) + load_python_experiments(def_dir)
    return combine(files, cluster_names)


def _parse_clusters(text: str | None) -> set[str] | None:
    if text is None:
        return None
    return {c.strip() for c in text.split(",") if c.strip()}


def _emit(out: IO[str], message: dict) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def evaluate_each(def_dir: Path, files: list[str], out: IO[str]) -> None:
    """Evaluate `files` (relative to `def_dir`) one by one, each framed by a start and a done line."""
    def_dir = Path(def_dir)
    entry = str(def_dir.resolve())
    forget_user_modules(def_dir)
    importlib.invalidate_caches()
    sys.path.insert(0, entry)  # helper modules beside the experiment files import, as in the original
    _emit(out, {"ready": True})
    for rel in files:
        _emit(out, {"start": rel})
        path = def_dir / rel
        fr = load_python_file(def_dir, path) if path.suffix == ".py" else load_yaml_file(def_dir, path)
        _emit(out, {"done": rel, "result": json.loads(FILE_RESULT.dump_json(fr))})


def main(argv: list[str] | None = None) -> int:
    """Entry of the evaluator subprocess: JSON on the real stdout, user output on stderr."""
    parser = argparse.ArgumentParser(prog="python -m juqueue.definitions.evaluate")
    parser.add_argument("def_dir", type=Path)
    parser.add_argument("--clusters", default=None, help="comma-separated cluster names (omit: no check)")
    parser.add_argument("--each", action="store_true", help="the files on stdin, one result line each")
    args = parser.parse_args(argv)
    files = [line.rstrip("\n") for line in sys.stdin if line.strip()] if args.each else []
    sys.stdout.flush()
    real_stdout = os.dup(1)
    os.dup2(2, 1)  # writes to fd 1 by user code or its children land on stderr
    saved = sys.stdout
    sys.stdout = sys.stderr
    with os.fdopen(real_stdout, "w") as out:
        try:
            if args.each:
                evaluate_each(args.def_dir, files, out)
                return 0
            result = evaluate_def_dir(args.def_dir, _parse_clusters(args.clusters))
        finally:
            sys.stdout = saved
        out.write(result.model_dump_json())
        out.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
