"""`load_definitions`: the def dir evaluated in a subprocess, every file with its own timeout.

Why one subprocess for all files rather than one per file: an interpreter that imports JuQueue
and pydantic costs a good part of a second on a busy login node, so a dir of hundreds of files
would take minutes; one evaluator also imports shared helper modules once, as the original
JuQueue did. It reports each file's start and end (`juqueue.definitions.evaluate --each`), so the
parent times every file alone: a file that loops, sleeps or floods its output past the timeout
is killed with its process group and named in its error, and a new evaluator goes on with the
files after it. A file that kills the evaluator (os._exit, a crash in C) is named the same way.
Such a file fails as a whole like any file with an error, so the store keeps what it had for it.
The user code's output (stdout and stderr) is drained and only its tail kept, so endless output
costs no memory. The cross-file checks (`combine`) run here, on the collected file results.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from pydantic import ValidationError

from juqueue.definitions.models import DefinitionError, LoadResult
from juqueue.definitions.python_loader import python_files
from juqueue.definitions.validation import FILE_RESULT, FileResult, combine
from juqueue.definitions.yaml_loader import yaml_files
from juqueue.settings import Settings

STDERR_TAIL = 2000
STARTUP_TIMEOUT_S = 60.0  # the evaluator's own start (imports), on top of no file's time


def definition_files(def_dir: Path) -> list[str]:
    """The files an evaluation reads, relative and in load order: YAML first, then Python."""
    return [p.relative_to(def_dir).as_posix() for p in yaml_files(def_dir) + python_files(def_dir)]


def _aborted(def_dir: Path, message: str) -> LoadResult:
    return LoadResult(aborted=True, errors=[DefinitionError(file=str(def_dir), message=message)])


def _failed(file: str, message: str) -> FileResult:
    fr = FileResult(file=file)
    fr.error(message)
    return fr


class _Tail:
    """The last STDERR_TAIL characters of a stream, drained on a thread so the writer never blocks."""

    def __init__(self, stream) -> None:
        self.text = ""
        self._stream = stream
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while chunk := self._stream.read1(65536):
            self.text = (self.text + chunk.decode(errors="replace"))[-STDERR_TAIL:]

    def finish(self) -> str:
        self._thread.join(5)
        return self.text.strip()


def _lines(stream, out: queue.Queue) -> None:
    for line in stream:
        out.put(line)
    out.put(None)


def _start(def_dir: Path, files: list[str]) -> subprocess.Popen:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_package_root(), env.get("PYTHONPATH")) if p)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    proc = subprocess.Popen([sys.executable, "-m", "juqueue.definitions.evaluate", str(def_dir), "--each"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=def_dir, env=env, start_new_session=True)
    assert proc.stdin is not None
    try:
        proc.stdin.write("".join(f + "\n" for f in files).encode())
        proc.stdin.close()
    except BrokenPipeError:
        pass  # it died at once: its exit says why
    return proc


def _evaluate_some(def_dir: Path, files: list[str], timeout_s: float, results: dict[str, FileResult]) -> str | None:
    """Evaluate `files` in one evaluator until it ends or one file fails it; that file's result is
    then its error. Returns a message when the evaluator failed before any file (abort all)."""
    proc = _start(def_dir, files)
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=_lines, args=(proc.stdout, lines), daemon=True)
    reader.start()
    stderr = _Tail(proc.stderr)
    current: str | None = None
    ready = False
    deadline = time.monotonic() + STARTUP_TIMEOUT_S + timeout_s
    try:
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = "timeout"
            if line == "timeout":
                _kill_group(proc)
                if current is None:
                    return (f"the definition evaluator did not start within {STARTUP_TIMEOUT_S + timeout_s:g} s" if not ready
                            else f"the definition evaluator hung between files for more than {timeout_s:g} s")
                results[current] = _failed(current, f"evaluating this file took longer than {timeout_s:g} s (an endless "
                                                    "loop, a blocking call or endless output?); it was killed, the "
                                                    "other files were evaluated")
                return None
            if line is None:  # the evaluator ended
                _kill_group(proc)
                code = proc.returncode
                tail = stderr.finish()
                if current is not None:
                    results[current] = _failed(current, f"the evaluator died while loading this file (exit code {code}): {tail}")
                    return None
                if all(f in results for f in files):
                    return None
                return f"evaluating the definitions crashed (exit code {code}): {tail}"
            try:
                message = json.loads(line)
            except ValueError:
                continue  # not ours: the deadline stands
            if not isinstance(message, dict):
                continue
            if message.get("ready"):
                ready = True
            elif isinstance(message.get("start"), str) and message["start"] in files:
                current = message["start"]
            elif message.get("done") == current and current is not None:
                try:
                    results[current] = FILE_RESULT.validate_python(message.get("result"))
                except ValidationError as exc:
                    results[current] = _failed(current, f"the evaluator's result for this file was unreadable: {exc}")
                current = None
            else:
                continue
            deadline = time.monotonic() + timeout_s
    finally:
        _kill_group(proc)
        reader.join(5)  # EOF follows the kill at once
        stderr.finish()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def load_definitions(def_dir: Path, cluster_names: set[str], timeout_s: float = Settings.eval_timeout_s) -> LoadResult:
    """Evaluate `def_dir` in a subprocess, each file within `timeout_s`; a file that times out or
    crashes the evaluator fails alone, named. Aborted only when the evaluator cannot run at all."""
    def_dir = Path(def_dir).resolve()
    if not def_dir.is_dir():
        return _aborted(def_dir, "definition directory does not exist")
    files = definition_files(def_dir)
    results: dict[str, FileResult] = {}
    while len(results) < len(files):
        todo = [f for f in files if f not in results]
        failure = _evaluate_some(def_dir, todo, timeout_s, results)
        if failure is not None:
            return _aborted(def_dir, failure)
    return combine([results[f] for f in files], cluster_names)


def _package_root() -> str:
    import juqueue

    return str(Path(juqueue.__file__).resolve().parent.parent)


def _kill_group(proc: subprocess.Popen) -> None:
    """The evaluator and whatever user code started, all at once (it leads its own group)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass
