"""Runs: the list's shape (`run_to_dict`, what `runs --json` prints), one run with its attempts
and events, a log chunk, and the run verbs' answers."""

from __future__ import annotations

from pydantic import BaseModel, Field, create_model

from juqueue.run_verbs import RUN_VERBS, RunVerb


class RunModel(BaseModel):
    """One run as lists show it (`GET /api/runs`, `juqueue runs --json`)."""

    experiment: str
    id: str = Field(description="the run id within its experiment")
    global_id: str = Field(description="'experiment@run'")
    status: str
    attempt: int = Field(description="the latest attempt's number (0: never started)")
    exit_code: int | None = None
    node: str | None = Field(None, description="the node of its latest attempt")
    cluster: str
    queued_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    reason: str | None = Field(None, description="why it failed, was cancelled or waits")
    defined: bool = Field(description="false: removed from its definition file (kept with its history, not run)")
    depends_on: list[str] = Field(default_factory=list, description="global ids of the runs it waits for")
    retries_used: int = 0
    max_retries: int = 0


class AttemptModel(BaseModel):
    """One attempt of a run: where and when it ran, how it ended."""

    global_id: str
    number: int
    node: str | None = None
    host: str | None = Field(None, description="the host of its node (null: not known yet)")
    slot: int | None = Field(None, description="the first of its slots")
    slots: list[int] | None = Field(None, description="the slot indices it holds on its node (null: not recorded)")
    pid: int | None = None
    pgid_start: int | None = None
    published_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    exit_code: int | None = None
    end_reason: str | None = Field(None, description="exited, interrupted or cancelled")
    interrupted_by: str | None = None
    stop_requested: str | None = None
    stop_reason: str | None = Field(None, description="why JuQueue stopped it (cancel, server_stop, node_stop, ...)")
    last_checkpoint_at: float | None = Field(None, description="when the run last touched its $JUQUEUE_CHECKPOINT_FILE "
                                                                "in this attempt, as its worker reported (null: never)")
    stderr_tail: list[str] | None = Field(None, description="a failed attempt (exited, exit code not 0): the last "
                                                            "50 lines of its stderr; null otherwise")


class EventModel(BaseModel):
    """One transition of a run."""

    global_id: str
    ts: float
    kind: str
    attempt: int | None = None
    node: str | None = None
    detail: str | None = None


class RunDetailModel(RunModel):
    """One run (`GET /api/runs/{global_id}`) with its attempts (oldest first) and history."""

    attempts: list[AttemptModel] = Field(default_factory=list)
    events: list[EventModel] = Field(default_factory=list)


class LogChunkModel(BaseModel):
    """A chunk of one attempt's stdout or stderr; poll again from `next_offset`."""

    global_id: str
    attempt: int = Field(description="the attempt read (0: none started yet, the text is empty)")
    stream: str = Field(description="out or err")
    offset: int = Field(description="the byte offset the text starts at")
    next_offset: int = Field(description="where the next chunk starts")
    size: int = Field(0, description="the log file's size in bytes now (0: no file yet)")
    text: str
    latest_attempt: int
    status: str = Field(description="the run's status")
    final: bool = Field(description="the run is final: no more output will come")


class VerbAnswerBase(BaseModel):
    """What a run verb did: its `<done>` list, what it skipped (and why), the unknown names."""

    unknown: list[str] = Field(description="ids and experiments that do not exist")
    skipped: list[str] = Field(description="runs whose status the verb does not act on")
    skipped_reasons: dict[str, str] = Field(description="why each skipped run was skipped")
    matched: int = Field(description="how many runs the selection found")


def verb_answer_model(verb: RunVerb) -> type[VerbAnswerBase]:
    """The answer of `POST /api/runs/<verb>`: its done key (`cancelled`, `requeued`, ...) first."""
    name = f"{verb.name.capitalize()}Answer"
    field = (list[str], Field(description=f"the global ids {verb.done_key}"))
    return create_model(name, __base__=VerbAnswerBase, **{verb.done_key: field})  # type: ignore[call-overload]


VERB_ANSWERS: dict[str, type[VerbAnswerBase]] = {v.name: verb_answer_model(v) for v in RUN_VERBS}
