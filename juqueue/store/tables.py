"""SQLModel tables: the store is the source of truth; Redis only carries messages."""

from __future__ import annotations

from typing import Optional

from sqlalchemy import Index
from sqlmodel import Field, SQLModel


class ExperimentRow(SQLModel, table=True):
    __tablename__ = "experiments"

    name: str = Field(primary_key=True)
    source_file: str = ""
    defined: bool = True
    fingerprint: str = ""  # of all its runs' definitions: an unchanged experiment is skipped on reload


class RunRow(SQLModel, table=True):
    __tablename__ = "runs"
    # The runs list's filters and default order, paged (schema version 6): a page of 100 out of
    # 100,000 reads the index, not every row; global_id last so a page's ids come from the index alone.
    __table_args__ = (
        Index("ix_runs_experiment_run_id", "experiment", "run_id", "global_id"),
        Index("ix_runs_status_experiment_run_id", "status", "experiment", "run_id", "global_id"),
        Index("ix_runs_cluster_status", "cluster", "status"),
        Index("ix_runs_node_cluster_status", "node", "cluster", "status"),
        # The experiments' projection (schema version 7): what is left per experiment, grouped by
        # duration, from the index alone (no spec is read).
        Index("ix_runs_status_experiment_duration", "status", "experiment", "duration", "cluster"),
    )

    global_id: str = Field(primary_key=True)
    experiment: str = Field(index=True)
    run_id: str
    cluster: str
    status: str = Field(index=True)
    attempt: int = 0  # the current (latest) attempt number: the fencing epoch
    exit_code: Optional[int] = None
    node: Optional[str] = None
    reason: Optional[str] = None  # why it failed / was cancelled / waits
    defined: bool = True  # False once removed from its file: kept with its history, not run
    spec_json: str = "{}"
    duration: Optional[float] = None  # the definition's expected run time, seconds (schema version 9; filled from spec_json)
    fingerprint: str = ""
    depends_on: str = "[]"  # JSON list of global ids
    max_retries: int = 0
    retries_used: int = 0
    queued_at: Optional[float] = None
    started_at: Optional[float] = None
    ended_at: Optional[float] = None
    # Its place in the definition files when it was defined (schema version 7; NULL before):
    # runs queued together start in definition order (policy.queue_order).
    def_order: Optional[int] = None


class AttemptRow(SQLModel, table=True):
    __tablename__ = "attempts"

    id: Optional[int] = Field(default=None, primary_key=True)
    global_id: str = Field(index=True)
    number: int
    node: Optional[str] = Field(default=None, index=True)
    slot: Optional[int] = None  # the first of its slots
    slots: Optional[str] = None  # JSON list of its slot indices (schema version 4; NULL before)
    pid: Optional[int] = None
    pgid_start: Optional[int] = None  # the group leader's start time (clock ticks): guards pid reuse
    published_at: Optional[float] = None
    started_at: Optional[float] = None
    ended_at: Optional[float] = Field(default=None, index=True)  # indexed (schema version 7): the live attempts are those without
    exit_code: Optional[int] = None
    end_reason: Optional[str] = None  # exited / interrupted / cancelled
    interrupted_by: Optional[str] = None  # node lost, wall time, moved, stop, cancel, ...
    stop_requested: Optional[str] = None  # recorded before the stop is sent (two-phase)
    stop_reason: str | None = None  # why JuQueue stopped it (a StopReason value); schema version 2, NULL before
    # When the run last said it checkpointed (the mtime of its $JUQUEUE_CHECKPOINT_FILE, as its
    # worker reported it); schema version 7, NULL before and while it has not
    last_checkpoint_at: Optional[float] = None


class NodeRow(SQLModel, table=True):
    __tablename__ = "nodes"

    name: str = Field(primary_key=True)
    cluster: str = Field(index=True)
    backend: str
    token: str
    state: str = Field(index=True)
    slots_total: int
    job_id: Optional[str] = None
    host: Optional[str] = None
    pid: Optional[int] = None  # local nodes: the worker's pid
    version: Optional[str] = None
    reason: Optional[str] = None
    created_at: float = 0.0
    started_at: Optional[float] = None
    last_heartbeat: Optional[float] = None
    ended_at: Optional[float] = None
    time_limit_at: Optional[float] = None  # when SLURM will end the job
    # Billing (schema version 3): local, the worker process's life; SLURM, the job's start as
    # squeue reports it to its end (sacct), or to when JuQueue saw it gone (estimated).
    billed_from: Optional[float] = None
    billed_until: Optional[float] = None
    billed_estimated: bool = False
    # Wall time without a gap (schema version 5): the node this one was started to replace, and
    # until when it is protected from release (that node's wall-time warning + grace period).
    replaces: Optional[str] = None
    protected_until: Optional[float] = None


class UsageSampleRow(SQLModel, table=True):
    """Nodes held and slots busy per cluster over time; a row only when either changed."""

    __tablename__ = "usage_samples"

    id: Optional[int] = Field(default=None, primary_key=True)
    cluster: str = Field(index=True)
    ts: float = Field(index=True)
    nodes: int
    slots_busy: int


class EventRow(SQLModel, table=True):
    """Every transition of a run, with time, node and attempt."""

    __tablename__ = "events"

    id: Optional[int] = Field(default=None, primary_key=True)
    global_id: str = Field(index=True)
    ts: float
    kind: str
    attempt: Optional[int] = None
    node: Optional[str] = None
    detail: Optional[str] = None


class UsageTotalRow(SQLModel, table=True):
    """Ended attempts summed per node and experiment (schema version 7; node "" for attempts
    without one), kept by the batch commit so accounting never reads every attempt."""

    __tablename__ = "usage_totals"

    node: str = Field(primary_key=True)
    experiment: str = Field(primary_key=True)
    busy_s: float = 0.0
    lost_s: float = 0.0
    attempts: int = 0
