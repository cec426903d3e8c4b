"""What an ended attempt means for its run, and whether a run may start: pure rules."""

from __future__ import annotations

from dataclasses import dataclass

from juqueue.status import RunStatus


@dataclass(frozen=True)
class Outcome:
    status: RunStatus
    reason: str | None = None
    spends_retry: bool = False


def attempt_outcome(exit_code: int, interrupted: bool, retries_used: int, max_retries: int) -> Outcome:
    """An interruption never decides a run nor spends its retry budget; an exit does."""
    if interrupted:
        return Outcome(RunStatus.QUEUED, "interrupted")
    if exit_code == 0:
        return Outcome(RunStatus.COMPLETED)
    if retries_used < max_retries:
        return Outcome(RunStatus.QUEUED, f"exit code {exit_code}; retry {retries_used + 1} of {max_retries}", spends_retry=True)
    return Outcome(RunStatus.FAILED, f"exit code {exit_code}")


@dataclass(frozen=True)
class Readiness:
    ready: bool
    failed_reason: str | None = None


def dependency_readiness(deps: dict[str, RunStatus | None]) -> Readiness:
    """Ready when every dependency COMPLETED; failed when one FAILED, was CANCELLED or is unknown."""
    for gid, status in sorted(deps.items()):
        if status is None:
            return Readiness(False, f"dependency {gid} does not exist")
        if status in (RunStatus.FAILED, RunStatus.CANCELLED):
            return Readiness(False, f"dependency {gid} {status.value}")
    return Readiness(all(s == RunStatus.COMPLETED for s in deps.values()))
