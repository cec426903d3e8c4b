"""A run's command line and environment: the executor's `prepend_script` lines, its venv and
HOME expansion, as the original gave them; and the wrapper's venv failure read back (pure
but for that one read of the attempt's stderr log).
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

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
