"""Starting and stopping a run's process group, without a Python process per run.

Each run is the leader of its own process group; the group's id plus the leader's start
time identify it, so whoever learns that a worker died can kill the whole group
(grandchildren included) and never a process that merely reused the pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path


def process_start_time(pid: int) -> int | None:
    """Start time of `pid` in clock ticks since boot (field 22 of /proc/pid/stat)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    after_comm = raw.rsplit(")", 1)[1].split()
    return int(after_comm[19])


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def signal_group(pgid: int, start_time: int | None, sig: int) -> bool:
    """Signal a run's process group; False when it is already gone.

    While any member lives the kernel keeps the group's id from being reused, so once
    the leader is gone the group can be signalled safely; a live leader with another
    start time means the pid was reused and the group is gone.
    """
    if pgid <= 1:
        return False
    if start_time:
        current = process_start_time(pgid)
        if current is not None and current != start_time:
            return False
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False


def kill_group(pgid: int, start_time: int | None) -> bool:
    return signal_group(pgid, start_time, signal.SIGKILL)


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
    env = dict(base)
    env.update({str(k): str(v) for k, v in (spec.get("env") or {}).items()})
    search = [str(p) for p in spec.get("python_search_path") or []]
    if search:
        old = env.get("PYTHONPATH")
        env["PYTHONPATH"] = os.pathsep.join(search + ([old] if old else []))
    env.update(extra)
    return env


def start_run(argv: list[str], env: dict[str, str], cwd: Path, stdout: Path, stderr: Path, cpus: list[int] | None) -> subprocess.Popen:
    """Start the run as the leader of a new session (own process group)."""
    stdout.parent.mkdir(parents=True, exist_ok=True)
    with open(stdout, "ab") as out, open(stderr, "ab") as err:
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
