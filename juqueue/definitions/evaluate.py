"""Evaluate a def dir: in-process (`evaluate_def_dir`) or in a fresh subprocess (`load_definitions`).

Python definition files are user code: the controller only ever calls `load_definitions`,
which runs `python -m juqueue.definitions.evaluate DEF_DIR --clusters a,b` in its own
process group with a timeout, so an import cache, a `sys.exit` or an endless loop never
touches the controller. The subprocess prints the LoadResult as JSON on its real stdout;
the user code's own output goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from juqueue.definitions.models import DefinitionError, LoadResult
from juqueue.definitions.python_loader import load_python_experiments
from juqueue.definitions.validation import combine
from juqueue.definitions.yaml_loader import load_yaml_experiments
from juqueue.settings import Settings

STDERR_TAIL = 2000


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


def main(argv: list[str] | None = None) -> int:
    """Entry of the evaluator subprocess: JSON LoadResult on the real stdout, user output on stderr."""
    parser = argparse.ArgumentParser(prog="python -m juqueue.definitions.evaluate")
    parser.add_argument("def_dir", type=Path)
    parser.add_argument("--clusters", default=None, help="comma-separated cluster names (omit: no check)")
    args = parser.parse_args(argv)
    sys.stdout.flush()
    real_stdout = os.dup(1)
    os.dup2(2, 1)  # writes to fd 1 by user code or its children land on stderr
    saved = sys.stdout
    sys.stdout = sys.stderr
    try:
        result = evaluate_def_dir(args.def_dir, _parse_clusters(args.clusters))
    finally:
        sys.stdout = saved
    with os.fdopen(real_stdout, "w") as out:
        out.write(result.model_dump_json())
        out.write("\n")
    return 0


def _package_root() -> str:
    import juqueue

    return str(Path(juqueue.__file__).resolve().parent.parent)


def load_definitions(def_dir: Path, cluster_names: set[str], timeout_s: float = Settings.eval_timeout_s) -> LoadResult:
    """Evaluate `def_dir` in a fresh subprocess; timeout or crash gives an aborted LoadResult."""
    def_dir = Path(def_dir).resolve()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_package_root(), env.get("PYTHONPATH")) if p)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    cmd = [sys.executable, "-m", "juqueue.definitions.evaluate", str(def_dir),
           "--clusters", ",".join(sorted(cluster_names))]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=def_dir if def_dir.is_dir() else None, env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return _aborted(def_dir, f"evaluating the definitions took longer than {timeout_s:g} s "
                                 "(an endless loop or a blocking call in a definition file?); killed")
    finally:
        _kill_group(proc)  # children left behind by user code
    text = out.decode(errors="replace").strip()
    tail = err.decode(errors="replace")[-STDERR_TAIL:].strip()
    if proc.returncode != 0 or not text:
        return _aborted(def_dir, f"evaluating the definitions crashed (exit code {proc.returncode}): {tail}")
    try:
        return LoadResult.model_validate_json(text.splitlines()[-1])
    except ValueError as exc:
        return _aborted(def_dir, f"evaluator printed no valid result ({exc}); stderr: {tail}")


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if proc.returncode is None:
        try:
            proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


if __name__ == "__main__":
    sys.exit(main())
