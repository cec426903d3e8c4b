"""Pure parsers for what `sbatch`, `squeue` and `sacct` print.

Kept apart from the module that runs the commands so every format can be tested against
real captured output without a SLURM. Every parser matches a named-group regex and fails
loudly, quoting the pattern and the raw text, instead of guessing: a misread job state
could make the controller rerun a run that is still alive.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from juqueue.errors import JuQueueError

# squeue: one line per job, fields separated by ASCII unit separator (never in names or
# comments SLURM accepts from a shell), in this order. The free-text comment comes last.
SQUEUE_SEP = "\x1f"
SQUEUE_FORMAT = SQUEUE_SEP.join(["%i", "%j", "%T", "%L", "%l", "%N", "%r", "%S", "%k"])
_SQUEUE_LINE = re.compile(
    r"^(?P<job_id>[0-9]+(?:[_+][0-9\[\]\-,%]+)?)\x1f"
    r"(?P<name>[^\x1f]*)\x1f"
    r"(?P<state>[A-Z_]+)\x1f"
    r"(?P<time_left>[^\x1f]*)\x1f"
    r"(?P<time_limit>[^\x1f]*)\x1f"
    r"(?P<nodes>[^\x1f]*)\x1f"
    r"(?P<reason>[^\x1f]*)\x1f"
    r"(?:(?P<start>[^\x1f]*)\x1f)?"  # %S: the job's (expected, while pending) start; absent in older formats
    r"(?P<comment>[^\x1f]*)$"
)

# sacct --parsable2 (fields joined by "|"); the comment is last so a "|" in it is harmless.
SACCT_FIELDS = ["JobID", "JobName", "State", "NodeList", "Timelimit", "Reason", "Comment"]
SACCT_FORMAT = ",".join(SACCT_FIELDS)
_SACCT_LINE = re.compile(
    r"^(?P<job_id>[0-9]+(?:[_+][0-9\[\]\-,%]+)?)\|"
    r"(?P<name>[^|]*)\|"
    r"(?P<state>[A-Z_]+)(?: by \d+)?\+?\|"
    r"(?P<nodes>[^|]*)\|"
    r"(?P<time_limit>[^|]*)\|"
    r"(?P<reason>[^|]*)\|"
    r"(?P<comment>.*)$"
)

# sbatch --parsable: "<jobid>" or "<jobid>;<cluster>"
_SBATCH_PARSABLE = re.compile(r"^(?P<job_id>[0-9]+)(?:;(?P<cluster>[A-Za-z0-9_.\-]+))?$")

# Time strings SLURM accepts and prints: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS.
_TIME = re.compile(
    r"^(?:(?P<days>\d+)-(?P<d_hours>\d+)(?::(?P<d_minutes>\d+)(?::(?P<d_seconds>\d+))?)?"
    r"|(?P<hours>\d+):(?P<h_minutes>\d+):(?P<h_seconds>\d+)"
    r"|(?P<minutes>\d+)(?::(?P<m_seconds>\d+))?)$"
)
# Spellings of "no limit" (squeue/sacct print UNLIMITED; slurm.conf says INFINITE).
_NO_LIMIT = {"UNLIMITED", "INFINITE", "NOT_SET", "N/A", "PARTITION_LIMIT"}

# States after which none of the job's processes run any more. COMPLETING is not one of
# them: its processes may still be alive, so a run there is not yet safe to start again.
TERMINAL_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "REVOKED",
        "TIMEOUT",
    }
)


class SlurmParseError(JuQueueError, ValueError):
    """SLURM printed something this module does not understand."""

    def __init__(self, what: str, pattern: str, raw: str) -> None:
        self.what = what
        self.pattern = pattern
        self.raw = raw
        super().__init__(f"cannot parse {what}: {raw!r} does not match {pattern!r}")


@dataclass(frozen=True)
class SlurmJob:
    """One job as SLURM reports it. Times in seconds; None means no limit or unknown."""

    job_id: str
    name: str
    state: str
    comment: str
    nodes: str
    time_limit_s: int | None
    time_left_s: int | None
    reason: str
    start_time: float | None = None  # when it started (Unix seconds); None while pending or unknown

    @property
    def gone(self) -> bool:
        return job_is_gone(self.state)


def normalize_state(raw: str) -> str:
    """`CANCELLED by 1000` / `CANCELLED+` / `running` -> `CANCELLED` / `RUNNING`."""
    word = raw.strip().split(" ", 1)[0].rstrip("+").upper()
    return word


def job_is_gone(state: str) -> bool:
    """True when SLURM says no process of the job can still be running."""
    return normalize_state(state) in TERMINAL_STATES


def parse_time(value: str) -> int | None:
    """SLURM time string -> seconds; None for UNLIMITED and friends."""
    text = value.strip()
    if text.upper() in _NO_LIMIT:
        return None
    m = _TIME.match(text)
    if m is None:
        raise SlurmParseError("SLURM time", _TIME.pattern, value)
    g = {k: int(v) for k, v in m.groupdict().items() if v is not None}
    if "days" in g:
        return ((g["days"] * 24 + g["d_hours"]) * 60 + g.get("d_minutes", 0)) * 60 + g.get("d_seconds", 0)
    if "hours" in g:
        return (g["hours"] * 60 + g["h_minutes"]) * 60 + g["h_seconds"]
    return g["minutes"] * 60 + g.get("m_seconds", 0)


_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")


def parse_timestamp(value: str) -> float | None:
    """SLURM's local-time timestamp (2026-11-30T11:42:00) -> Unix seconds; None for N/A, Unknown, None."""
    text = value.strip()
    if text in ("", "N/A", "Unknown", "None", "(null)"):
        return None
    if not _TIMESTAMP.match(text):
        raise SlurmParseError("SLURM timestamp", _TIMESTAMP.pattern, value)
    return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))


def _time_field(value: str) -> int | None:
    # squeue prints INVALID for a time left it cannot compute; sacct may leave it empty
    return None if value.strip().upper() in ("INVALID", "") else parse_time(value)


def _text(value: str) -> str:
    """SLURM prints "(null)" for an unset string field."""
    return "" if value == "(null)" else value


def _reason(value: str) -> str:
    return "" if value in ("(null)", "None") else value


@contextmanager
def _in_line(what: str, line: str) -> Iterator[None]:
    """A bad field inside a line: quote the whole line, not just the field."""
    try:
        yield
    except SlurmParseError as exc:
        raise SlurmParseError(f"{what} ({exc.what} {exc.raw!r})", exc.pattern, line) from exc


def parse_sbatch_parsable(stdout: str) -> str:
    """Job id from `sbatch --parsable` output ("123" or "123;cluster")."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    m = _SBATCH_PARSABLE.match(lines[-1]) if lines else None
    if m is None:
        raise SlurmParseError("sbatch --parsable output", _SBATCH_PARSABLE.pattern, stdout)
    return m.group("job_id")


def parse_squeue_line(line: str) -> SlurmJob:
    """One line of `squeue --noheader --format=SQUEUE_FORMAT`."""
    m = _SQUEUE_LINE.match(line.rstrip("\n"))
    if m is None:
        raise SlurmParseError("squeue line", _SQUEUE_LINE.pattern, line)
    with _in_line("squeue line", line):
        return SlurmJob(
            job_id=m["job_id"],
            name=m["name"],
            state=normalize_state(m["state"]),
            comment=_text(m["comment"]),
            nodes=_text(m["nodes"]),
            time_limit_s=_time_field(m["time_limit"]),
            time_left_s=_time_field(m["time_left"]),
            reason=_reason(m["reason"]),
            start_time=None if normalize_state(m["state"]) == "PENDING" else parse_timestamp(m["start"] or ""),
        )


def squeue_line_name(line: str) -> str:
    """The job name field of a squeue line, without validating the rest (for filtering)."""
    parts = line.split(SQUEUE_SEP)
    return parts[1] if len(parts) > 1 else ""


def parse_squeue(output: str, name_prefix: str = "") -> list[SlurmJob]:
    """All jobs whose name starts with `name_prefix`; other users' tools' jobs are skipped
    before strict parsing, so their odd names or comments cannot break ours."""
    return [
        parse_squeue_line(line)
        for line in output.splitlines()
        if line.strip() and squeue_line_name(line).startswith(name_prefix)
    ]


def parse_sacct_line(line: str) -> SlurmJob:
    """One line of `sacct --parsable2 --noheader --format=SACCT_FORMAT`."""
    m = _SACCT_LINE.match(line.rstrip("\n"))
    if m is None:
        raise SlurmParseError("sacct line", _SACCT_LINE.pattern, line)
    nodes = _text(m["nodes"])
    with _in_line("sacct line", line):
        return SlurmJob(
            job_id=m["job_id"],
            name=m["name"],
            state=normalize_state(m["state"]),
            comment=_text(m["comment"]),
            nodes="" if nodes == "None assigned" else nodes,
            time_limit_s=_time_field(m["time_limit"]),
            time_left_s=None,
            reason=_reason(m["reason"]),
        )


def parse_sacct(output: str) -> dict[str, SlurmJob]:
    """Job id -> job; for a requeued job (several records) the last record wins."""
    jobs: dict[str, SlurmJob] = {}
    for line in output.splitlines():
        if line.strip():
            job = parse_sacct_line(line)
            jobs[job.job_id] = job
    return jobs
