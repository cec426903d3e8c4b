"""The user's run verbs (cancel, requeue, hold, release, resume), each described once.

A verb is carried out by the controller (`UserActions`, whose status checks read
`applies_to`), offered by the API (`POST /api/runs/<name>`, one route per verb) and by the
CLI (`juqueue <name>`, one command per verb). All three read this table, so a verb's name,
the statuses it acts on and its wording cannot drift apart. Pure: no I/O, no imports beyond
the status names.
"""

from __future__ import annotations

from dataclasses import dataclass

from juqueue.status import RunStatus

_LIVE = frozenset(s for s in RunStatus if s.is_live)
_FINAL = frozenset(s for s in RunStatus if s.is_final)


@dataclass(frozen=True)
class RunVerb:
    """One verb: what it acts on and how each interface names and explains it."""

    name: str  # CLI command, API path `/api/runs/<name>`
    applies_to: frozenset[RunStatus]  # the statuses it acts on; other runs are skipped
    done_key: str  # the API answer's list of the runs acted on (`{done_key, "skipped", "unknown"}`)
    skipped_why: str  # why the CLI says a run was skipped
    cli_help: str  # the CLI command's help
    api_summary: str  # the API route's summary
    by_status: bool = False  # the CLI takes `--status` (select every run with a status)
    completed_flag: bool = False  # takes `completed` (CLI `--completed`): completed runs too

    @property
    def method(self) -> str:
        """The Controller (and UserActions) method carrying the verb out; it takes the global
        ids (and `completed` when the verb has that flag) and returns those acted on."""
        return f"{self.name}_runs"

    def statuses(self, completed: bool = False) -> frozenset[RunStatus]:
        """`applies_to`, with COMPLETED added when asked for by a verb that allows it."""
        if completed and self.completed_flag:
            return self.applies_to | {RunStatus.COMPLETED}
        return self.applies_to


CANCEL = RunVerb(
    name="cancel", applies_to=frozenset(RunStatus) - _FINAL, done_key="cancelled", skipped_why="already final",
    cli_help="Cancel runs: queued ones at once, running ones are stopped (SIGTERM, grace, SIGKILL).",
    api_summary="Cancel runs (queued ones at once, live ones are stopped)", by_status=True)
REQUEUE = RunVerb(
    name="requeue", applies_to=frozenset({RunStatus.FAILED, RunStatus.CANCELLED}), done_key="requeued",
    skipped_why="not failed or cancelled",
    cli_help="Put failed or cancelled runs back in the queue.",
    api_summary="Requeue failed or cancelled runs", by_status=True)
HOLD = RunVerb(
    name="hold", applies_to=frozenset({RunStatus.QUEUED}) | _LIVE, done_key="held", skipped_why="not queued nor live",
    cli_help="Hold queued runs (they start no node); a live run is held if it is interrupted later.",
    api_summary="Hold queued runs (no demand); live ones are held if interrupted later", by_status=True)
RELEASE = RunVerb(
    name="release", applies_to=frozenset({RunStatus.HELD}), done_key="released", skipped_why="not held",
    cli_help="Put held runs back in the queue.",
    api_summary="Release held runs into the queue", by_status=True)
RESUME = RunVerb(
    name="resume", applies_to=RELEASE.applies_to | REQUEUE.applies_to, done_key="resumed",
    skipped_why="not held, failed or cancelled (completed: with --completed)",
    cli_help="Release held runs and requeue failed and cancelled ones (fresh retry budget, next attempt).",
    api_summary="Release held runs and requeue failed and cancelled (and, asked for, completed) ones",
    by_status=True, completed_flag=True)

RUN_VERBS: tuple[RunVerb, ...] = (CANCEL, REQUEUE, HOLD, RELEASE, RESUME)  # the CLI's and the API's order
BY_NAME: dict[str, RunVerb] = {verb.name: verb for verb in RUN_VERBS}
