"""The one gate through which JuQueue runs `sbatch`, `squeue`, `sacct` and `scancel`.

Why one gate: every call must be an argument list (never a shell), have a timeout (a hung
slurmctld must not hang the controller), and run with a scrubbed environment. sbatch
exports the caller's whole environment by default and other users read it with
`scontrol show job`; SQUEUE_*/SACCT_*/SLURM_TIME_FORMAT variables would also change what
the parsers see. Jobs are submitted with `--export=NONE`: SLURM then builds the user's
login environment on the node, and the job script sets everything JuQueue needs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from juqueue.backends.slurm_parse import (
    SACCT_FORMAT,
    SQUEUE_FORMAT,
    SlurmJob,
    SlurmParseError,
    parse_sacct,
    parse_sbatch_parsable,
    parse_squeue,
    parse_timestamp,
)
from juqueue.errors import JuQueueError

SUBMIT_TIMEOUT_S = 60.0
QUERY_TIMEOUT_S = 30.0
CANCEL_TIMEOUT_S = 30.0

# The only variables SLURM's clients get from the caller.
_PASSED_ENV = ("PATH", "HOME", "USER", "LANG", "SLURM_CONF")
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"

# sacct where no accounting storage is configured: "Slurm accounting storage is disabled"
_NO_ACCOUNTING = re.compile(r"accounting storage is disabled|accounting_storage/none", re.IGNORECASE)
# scancel of a job that has already ended: nothing left to cancel, which is what we wanted
_ALREADY_GONE = re.compile(r"Invalid job id specified|already completing or completed", re.IGNORECASE)


class SlurmCommandError(JuQueueError):
    """A SLURM command failed; the message quotes SLURM's own words."""

    def __init__(
        self,
        command: list[str],
        exit_code: int | None,
        stdout: str,
        stderr: str,
        detail: str | None = None,
    ) -> None:
        self.command = list(command)
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr
        said = (stderr.strip() or stdout.strip() or "no output")
        how = detail or f"exit code {exit_code}"
        super().__init__(f"{command[0]} failed ({how}): {said}")


def slurm_env() -> dict[str, str]:
    """The scrubbed environment every SLURM client runs with."""
    env = {k: os.environ[k] for k in _PASSED_ENV if os.environ.get(k)}
    env.setdefault("PATH", _DEFAULT_PATH)
    return env


def _run(argv: list[str], *, timeout: float, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run one SLURM client; raise SlurmCommandError if it cannot start or times out."""
    try:
        return subprocess.run(
            argv,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=slurm_env(),
            check=False,
            stdin=None if stdin is not None else subprocess.DEVNULL,
        )
    except FileNotFoundError as exc:
        raise SlurmCommandError(argv, None, "", str(exc), detail="not found on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        raise SlurmCommandError(argv, None, out, err, detail=f"timed out after {timeout:g} s") from exc


def _check(argv: list[str], proc: subprocess.CompletedProcess[str]) -> None:
    if proc.returncode != 0:
        raise SlurmCommandError(argv, proc.returncode, proc.stdout, proc.stderr)


def submit_job(script: str, *, job_name: str, comment: str, workdir: Path, output: Path) -> str:
    """Submit `script` (passed on stdin) and return SLURM's job id.

    Name, comment and output are given on the command line too, so they hold even if the
    script's directives were edited; nothing secret may be in any of them.
    """
    argv = [
        "sbatch",
        "--parsable",
        "--export=NONE",
        f"--job-name={job_name}",
        f"--comment={comment}",
        f"--chdir={workdir}",
        f"--output={output}",
    ]
    proc = _run(argv, timeout=SUBMIT_TIMEOUT_S, stdin=script)
    _check(argv, proc)
    return parse_sbatch_parsable(proc.stdout)


def squeue_argv() -> list[str]:
    # --states=all: jobs that ended within MinJobAge show their final state too
    return ["squeue", "--me", "--noheader", "--states=all", f"--format={SQUEUE_FORMAT}"]


def list_jobs(name_prefix: str) -> list[SlurmJob]:
    """This user's jobs whose name starts with `name_prefix`, in one squeue call."""
    argv = squeue_argv()
    proc = _run(argv, timeout=QUERY_TIMEOUT_S)
    _check(argv, proc)
    return parse_squeue(proc.stdout, name_prefix)


def cancel_job(job_id: str, signal: str | None = None) -> None:
    """Cancel a job, or with `signal` (e.g. "USR1") signal only its batch shell.

    `--batch` makes a signal behave like `sbatch --signal=B:...` (the wall-time warning):
    it reaches the job script's trap, not the Celery worker. Cancelling a job that has
    already ended is not an error; signalling one is.
    """
    argv = ["scancel"]
    if signal is not None:
        argv += ["--batch", f"--signal={signal}"]
    argv.append(job_id)
    proc = _run(argv, timeout=CANCEL_TIMEOUT_S)
    if proc.returncode != 0 and signal is None and _ALREADY_GONE.search(proc.stderr):
        return
    _check(argv, proc)


def job_accounting(job_ids: list[str]) -> dict[str, SlurmJob]:
    """Final records of `job_ids` from sacct in one call; {} where accounting is off."""
    if not job_ids:
        return {}
    argv = [
        "sacct",
        "--parsable2",
        "--noheader",
        "--allocations",
        f"--format={SACCT_FORMAT}",
        "-j",
        ",".join(job_ids),
    ]
    proc = _run(argv, timeout=QUERY_TIMEOUT_S)
    if proc.returncode != 0 and _NO_ACCOUNTING.search(proc.stderr + proc.stdout):
        return {}
    _check(argv, proc)
    return parse_sacct(proc.stdout)


def job_end_time(job_id: str) -> float | None:
    """When the job ended as SLURM's accounting records it; None without accounting or record."""
    argv = ["sacct", "--parsable2", "--noheader", "--allocations", "--format=End", "-j", job_id]
    try:
        proc = _run(argv, timeout=QUERY_TIMEOUT_S)
    except SlurmCommandError:
        return None
    if proc.returncode != 0:
        return None
    lines = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
    try:
        return parse_timestamp(lines[-1]) if lines else None
    except SlurmParseError:
        return None


def slurm_available() -> bool:
    """True when SLURM's clients are on PATH and slurmctld answers."""
    if shutil.which("sbatch") is None or shutil.which("squeue") is None:
        return False
    try:
        proc = _run(["squeue", "--me", "--noheader", "--format=%i"], timeout=10.0)
    except SlurmCommandError:
        return False
    return proc.returncode == 0
