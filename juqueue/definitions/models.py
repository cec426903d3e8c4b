"""Validated, plain-data models every other layer works with.

The loaders (YAML, the original Python API, clusters.yaml) all produce these; nothing
past `definitions/` ever sees a raw dict or a user's Python object.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from juqueue.policy.duration import parse_duration
from juqueue.policy.scaling import ScalingPolicy
from juqueue.settings import Settings


class ExecutorSpec(BaseModel):
    """How a run's command is started: its environment and what runs before it."""

    model_config = ConfigDict(extra="forbid")

    env: dict[str, str] = Field(default_factory=dict)
    python_search_path: list[str] = Field(default_factory=list)
    venv: str | None = None
    prepend_script: list[str] = Field(default_factory=list)
    cuda: bool = False


class RunSpec(BaseModel):
    """One run as defined, before any attempt.

    `cmd` is the fully rendered argument list (parameters appended); the placeholders
    `{run_dir}` and `{log_dir}` inside its items are resolved against the work dir when an
    attempt starts (the original API's `RunDef.path` / `RunDef.log_path`).
    """

    model_config = ConfigDict(extra="forbid")

    experiment: str
    id: str
    cluster: str
    cmd: list[str]
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec)
    depends_on: list[str] = Field(default_factory=list)  # global ids: "experiment@run"
    max_retries: int = 0
    movable: bool = True  # False: consolidation never interrupts it
    duration: float | None = Field(None, ge=0)  # expected run time in seconds, when the user knows it
    hold: bool = False  # when the run first appears it is `held`, not queued
    slots: int = Field(1, ge=1)  # slots of one node it needs (their CPU and GPU blocks); at most its cluster's num_slots
    # How much a stop costs it (consolidation weighs moves by them); None: its cluster's default
    checkpoint_interval: float | None = Field(None, ge=0)  # seconds between its checkpoints
    restart_cost: float | None = Field(None, ge=0)  # seconds a restarted attempt spends before new progress
    checkpoint_on_term: bool | None = None  # True: it saves its state on SIGTERM within grace_period
    priority: int = 0  # queue order: higher starts first (policy.queue_order)
    source_file: str = ""

    @property
    def global_id(self) -> str:
        return f"{self.experiment}@{self.id}"

    def fingerprint(self) -> str:
        """Changes whenever anything that affects execution changes (not the source path)."""
        data = self.model_dump(exclude={"source_file"})
        # Fields added later count only when set, so older stores keep their fingerprints.
        for key, default in _LATER_DEFAULTS.items():
            if data.get(key) == default:
                data.pop(key, None)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


_LATER_DEFAULTS: dict[str, object] = {"movable": True, "duration": None, "hold": False, "slots": 1,
                                      "checkpoint_interval": None, "restart_cost": None, "checkpoint_on_term": None,
                                      "priority": 0}


class DefinitionError(BaseModel):
    """One problem in one definition file; `file` always names the culprit."""

    file: str
    message: str
    run: str | None = None
    field: str | None = None
    experiment: str | None = None  # the experiment its file defines, when it defines exactly one

    def __str__(self) -> str:
        where = self.file
        if self.run:
            where += f": run {self.run!r}"
        if self.field:
            where += f": field {self.field!r}"
        return f"{where}: {self.message}"


class LoadResult(BaseModel):
    """What one evaluation of a def dir produced.

    `experiments` maps experiment name -> source file for every file that loaded;
    `failed_files` lists files that failed as a whole: the store must not touch the
    experiments those files define (they keep what they had).
    """

    runs: list[RunSpec] = Field(default_factory=list)
    experiments: dict[str, str] = Field(default_factory=dict)
    errors: list[DefinitionError] = Field(default_factory=list)
    failed_files: list[str] = Field(default_factory=list)
    # experiment names (as far as known) of the failed files: leave them untouched
    failed_experiments: list[str] = Field(default_factory=list)
    # experiment name -> its node-hour budget (`budget_node_hours`), for those that set one
    budgets: dict[str, float] = Field(default_factory=dict)
    # True when the evaluation as a whole failed (timeout, crash, missing def dir): then
    # nothing is known about any file and the caller must change nothing at all
    aborted: bool = False


class ClusterSpec(BaseModel):
    """One cluster from clusters.yaml: `local`, `slurm`, or a registered backend's type
    (`juqueue.backends.registry`; clusters.yaml's parser checks it)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    type: str
    num_slots: int = Field(1, ge=1)
    max_jobs: int = Field(1, ge=0)
    cpus_per_slot: int | None = Field(None, ge=1)
    cuda_devices_per_slot: int | None = Field(None, ge=1)
    idle_timeout: float = Field(30.0, ge=0)  # seconds an empty node lives before it is stopped
    grace_period: float = Field(30.0, ge=0)  # seconds between SIGTERM and SIGKILL when a run is stopped
    heartbeat_interval: float = Field(Settings.heartbeat_interval_s, gt=0)  # else `serve`'s Settings fill it
    heartbeat_timeout: float = Field(Settings.heartbeat_timeout_s, gt=0)
    scaling_policy: ScalingPolicy = ScalingPolicy.MAXIMIZE_RUNNING
    min_saturation: float = Field(0.5, ge=0.0, le=1.0)  # for scaling_policy: min_saturation
    consolidation: Literal["aggressive", "idle"] = "aggressive"
    consolidate_after: float = Field(60.0, ge=0)  # seconds a surplus must last before runs are moved
    move_cooldown: float = Field(300.0, ge=0)  # seconds a moved run is not moved again (measured: bench/README.md)
    # defaults of its runs' checkpoint_interval (None: no checkpoints known), restart_cost, checkpoint_on_term
    checkpoint_interval: float | None = Field(None, ge=0)
    restart_cost: float = Field(0.0, ge=0)
    checkpoint_on_term: bool = False
    budget_node_hours: float | None = Field(None, gt=0)  # no node starts once it would be exceeded
    budget_step: float = Field(3600.0, gt=0)  # seconds a local node is counted for in the budget
    env: dict[str, str] = Field(default_factory=dict)
    # local only (accepted from the original's files)
    cores: int | None = None
    memory: str | None = None
    # slurm only
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time: str | None = None  # SLURM time formats
    cpus_per_task: int | None = None
    gres: str | None = None
    constraint: str | None = None
    exclusive: bool = False
    extra_directives: list[str] = Field(default_factory=list)
    prologue: list[str] = Field(default_factory=list)
    python: str | None = None
    job_name: str = "juqueue"
    signal_lead: int = Field(120, ge=0)  # seconds before the time limit the job is warned
    # seconds before a node's wall-time warning its replacement job is submitted (0: none)
    replacement_lead: float = Field(600.0, ge=0)
    poll_interval: float = Field(30.0, gt=0)

    @field_validator("scaling_policy", mode="before")
    @classmethod
    def _policy_name(cls, value: object) -> object:
        """The original's files name the policy; a mapping {name: ...} is accepted too."""
        if value is None:
            return ScalingPolicy.MAXIMIZE_RUNNING
        if isinstance(value, dict) and "name" in value:
            return value["name"]
        return value

    @field_validator("consolidate_after", "move_cooldown", "replacement_lead", "checkpoint_interval", "restart_cost",
                     mode="before")
    @classmethod
    def _seconds(cls, value: object) -> object:
        return parse_duration(value) if isinstance(value, str) else value
