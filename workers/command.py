"""Starting a run as the leader of its own process group, without a Python process per run.

Stopping a group (by its leader's pid and start time, grandchildren included) lives in
`juqueue.process_group`, shared with the controller side.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

# Kept importable from here until juqueue.controller imports them from juqueue.process_group.
from juqueue.process_group import group_alive, kill_group, process_start_time, signal_group

__all__ = [
    "VENV_EXIT_CODE", "build_argv", "build_env", "expand_home", "group_alive", "kill_group", "process_start_time", "shell_exit_code",
    "signal_group", "start_run", "WorkDirError",
]


VENV_EXIT_CODE = 127  # a venv that cannot be activated: the command could not start, as a missing binary
_VENV_PREFIX = "juqueue: cannot activate the venv"  # the wrapper's stderr line, read back by venv_failure


_HOME_VAR = re.compile(r"\$(?:\{HOME\}|HOME(?![A-Za-z0-9_]))")


def expand_home(path: str, home: str | None) -> str:
    """`~`, `~/x`, `~user/x`, `$HOME` and `${HOME}` expanded against `home` (the run's HOME;
    the worker's when unset), on the node when the attempt starts; nothing else changes."""
    home = home or os.path.expanduser("~")
    path = _HOME_VAR.sub(lambda _m: home, path)
    if path == "~" or path.startswith("~/"):
        return home + path[1:]
    if path.startswith("~"):
        return os.path.expanduser(path)  # ~user
    return path


def _venv_lines(venv: str, expanded: str) -> list[str]:
    """Activate the venv, or end with VENV_EXIT_CODE and the reason on stderr."""
    activate = os.path.join(expanded, "bin", "activate")
    q = shlex.quote(activate)
    missing = shlex.quote(f"{_VENV_PREFIX} {venv!r}: {activate} does not exist")
    failed = shlex.quote(f"{_VENV_PREFIX} {venv!r}: sourcing {activate} failed")
    return [
        f"if [ ! -f {q} ]; then echo {missing} >&2; exit {VENV_EXIT_CODE}; fi",
        f'. {q} || {{ echo {failed} "(exit code $?)" >&2; exit {VENV_EXIT_CODE}; }}',
    ]


def venv_failure(stderr: Path) -> str | None:
    """Why the venv could not be activated, from the attempt's stderr log (the last line the
    wrapper wrote there), so the run's reason says it; None when the log holds no such line."""
    try:
        with open(stderr, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 4096))
            tail = fh.read().decode(errors="replace")
    except OSError:
        return None
    lines = [line for line in tail.splitlines() if line.startswith(_VENV_PREFIX)]
    return lines[-1][len("juqueue: "):] if lines else None


def build_argv(spec: dict, env: dict[str, str] | None = None) -> list[str]:
    """The command, wrapped in bash only when the executor asks for shell lines or a venv.

    The original's order: the `prepend_script` lines, then the venv is activated (`~` and
    `$HOME` expanded against the run's HOME), then `exec` the command. A venv that cannot be
    activated ends the attempt with exit code VENV_EXIT_CODE and the reason on its stderr."""
    cmd = [str(c) for c in spec["cmd"]]
    lines: list[str] = list(spec.get("prepend_script") or [])
    if spec.get("venv"):
        venv = str(spec["venv"])
        home = (env if env is not None else os.environ).get("HOME")
        lines.extend(_venv_lines(venv, expand_home(venv, home)))
    if not lines:
        return cmd
    script = "\n".join([*lines, 'exec "$@"'])
    return ["bash", "-c", script, "juqueue-run", *cmd]


def build_env(base: dict[str, str], spec: dict, extra: dict[str, str]) -> dict[str, str]:
    """The worker's environment, then the executor's; JuQueue's own variables (`extra`) win.
    `python_search_path` entries go before PYTHONPATH, `~` and `$HOME` expanded."""
    env = dict(base)
    env.update({str(k): str(v) for k, v in (spec.get("env") or {}).items()})
    home = env.get("HOME")
    search = [expand_home(str(p), home) for p in spec.get("python_search_path") or []]
    if search:
        old = env.get("PYTHONPATH")
        env["PYTHONPATH"] = os.pathsep.join(search + ([old] if old else []))
    env.update(extra)
    return env


class WorkDirError(OSError):
    """The work dir refused a write the attempt needs (its logs): not the command's failure."""


def start_run(argv: list[str], env: dict[str, str], cwd: Path, stdout: Path, stderr: Path, cpus: list[int] | None) -> subprocess.Popen:
    """Start the run as the leader of a new session (own process group).

    Raises WorkDirError when its log files cannot be made, OSError when the command itself
    cannot start (a missing binary)."""
    out = None
    try:
        stdout.parent.mkdir(parents=True, exist_ok=True)
        out = open(stdout, "ab")
        err = open(stderr, "ab")
    except OSError as exc:
        if out is not None:
            out.close()
        raise WorkDirError(exc.errno, f"work dir: {exc}") from exc
    with out, err:
        preexec = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
        return subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            preexec_fn=preexec,
            close_fds=True,
        )


def shell_exit_code(returncode: int) -> int:
    """Exit code as a shell reports it: 128+N for death by signal N."""
    return 128 - returncode if returncode < 0 else returncode
