"""Starting a run as the leader of its own process group, without a Python process per run.

Stopping a group (by its leader's pid and start time, grandchildren included) lives in
`juqueue.process_group`, shared with the controller side.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

# Kept importable from here until juqueue.controller imports them from juqueue.process_group.
from juqueue.process_group import group_alive, kill_group, process_start_time, signal_group

__all__ = [
    "build_argv", "build_env", "group_alive", "kill_group", "process_start_time", "shell_exit_code",
    "signal_group", "start_run", "WorkDirError",
]


def build_argv(spec: dict) -> list[str]:
    """The command, wrapped in bash only when the executor asks for a venv or shell lines."""
    cmd = [str(c) for c in spec["cmd"]]
    lines: list[str] = []
    if spec.get("venv"):
        lines.append(f'source "{spec["venv"]}/bin/activate"')
    lines.extend(spec.get("prepend_script") or [])
    if not lines:
        return cmd
    script = "\n".join([*lines, 'exec "$@"'])
    return ["bash", "-c", script, "juqueue-run", *cmd]


def build_env(base: dict[str, str], spec: dict, extra: dict[str, str]) -> dict[str, str]:
    """The worker's environment, then the executor's; JuQueue's own variables (`extra`) win."""
    env = dict(base)
    env.update({str(k): str(v) for k, v in (spec.get("env") or {}).items()})
    search = [str(p) for p in spec.get("python_search_path") or []]
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
