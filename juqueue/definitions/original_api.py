"""The original JuQueue's Python API (`ExperimentDef`, `RunDef`, `ExecutorDef`).

Experiment files written for the original keep loading unchanged; these classes only
describe runs and are turned into plain `RunSpec`s by `RunDef.to_spec()`, so nothing past
`definitions/` ever sees a user's Python object.

Rendering follows the original: parameters are appended to `cmd` as `--key-name value`
(`argparse`, underscores become dashes) or `key=value` (`eq`); values go through `str()`
(so `True` renders as `True` and a list as its Python repr); `None` is rejected, as the
original's pydantic model rejected it. `RunDef.path` / `RunDef.log_path` /
`ExperimentDef.path` / `PathVars.WORK_DIR` are placeholders (`juqueue/definitions/placeholders.py`)
resolved against the work dir when an attempt is published; a run's own paths render as
`{run_dir}` / `{log_dir}` / `{experiment_dir}`.

The original's module paths (`juqueue.definitions.run`, `.executor`, `.experiment`, `.path`,
`.utils`) re-export these names.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

import juqueue.definitions.placeholders as ph
from juqueue.definitions.models import ExecutorSpec, RunSpec
from juqueue.paths import WorkDir
from juqueue.policy.duration import parse_duration

RUN_DIR = ph.RUN_DIR
LOG_DIR = ph.LOG_DIR
EXPERIMENT_DIR = ph.EXPERIMENT_DIR
WORK_DIR = ph.WORK_DIR
ABSTRACT_ID = "@abstract"


class PathDef(PurePosixPath):
    """A path in the work dir, resolved only when an attempt starts.

    `run.path / "ckpt"` renders as `{run_dir}/ckpt` in the run's own command; do not resolve
    it in the definition.
    """


class PathVars:
    """Placeholders as the original named them (`WORK_DIR`), plus the run's own directories."""

    WORK_DIR: PathDef = PathDef(WORK_DIR)
    RUN_DIR: PathDef = PathDef(RUN_DIR)
    LOG_DIR: PathDef = PathDef(LOG_DIR)
    EXPERIMENT_DIR: PathDef = PathDef(EXPERIMENT_DIR)


def _to_str(value: Any) -> Any:
    """Path-likes and numbers become strings (the original's pydantic v1 coerced them)."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        return str(value)
    return value


def render_value(value: Any, what: str) -> str:
    """One command item or parameter value as the string the process will get."""
    if value is None:
        raise ValueError(f"{what} is None (not allowed; leave the parameter out instead)")
    if isinstance(value, (PurePosixPath, os.PathLike)):
        return str(value) if isinstance(value, PurePosixPath) else os.fspath(value)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, (str, int, float, bool)):
        return str(value)
    if isinstance(value, (list, tuple)):  # the original rendered these with str()
        return str(type(value)(str(x) if isinstance(x, (PurePosixPath, os.PathLike)) else x for x in value))
    raise ValueError(f"{what} has unsupported type {type(value).__name__}")


def render_cmd(cmd: list[Any], parameters: dict[str, Any], parameter_format: str) -> list[str]:
    """The full argument list: `cmd` items, then the parameters in the requested format."""
    out = [render_value(item, f"cmd[{i}]") for i, item in enumerate(cmd)]
    for key, value in parameters.items():
        rendered = render_value(value, f"parameter {key!r}")
        if parameter_format == "argparse":
            out.extend([f"--{key.replace('_', '-')}", rendered])
        elif parameter_format == "eq":
            out.append(f"{key}={rendered}")
        else:
            raise ValueError(f"unknown parameter_format {parameter_format!r}")
    return out


class ExecutorDef(BaseModel):
    """Environment of a run: env vars, PYTHONPATH additions, venv, bash lines before it, CUDA."""

    model_config = ConfigDict(extra="ignore")

    env: dict[str, str] = Field(default_factory=dict)
    python_search_path: list[str] = Field(default_factory=list)
    venv: str | None = None
    prepend_script: list[str] | None = None
    cuda: bool = False

    @field_validator("env", mode="before")
    @classmethod
    def _env_values(cls, v: Any) -> Any:
        return {k: _to_str(x) for k, x in v.items()} if isinstance(v, dict) else v

    @field_validator("python_search_path", "prepend_script", mode="before")
    @classmethod
    def _str_items(cls, v: Any) -> Any:
        return [_to_str(x) for x in v] if isinstance(v, (list, tuple)) else v

    @field_validator("venv", mode="before")
    @classmethod
    def _venv(cls, v: Any) -> Any:
        return _to_str(v)

    def to_spec(self) -> ExecutorSpec:
        return ExecutorSpec(
            env=dict(self.env),
            python_search_path=list(self.python_search_path),
            venv=self.venv,
            prepend_script=list(self.prepend_script or []),
            cuda=self.cuda,
        )


class RunDef(BaseModel):
    """One run as the original API defines it (command, parameters, executor, dependencies)."""

    model_config = ConfigDict(extra="ignore", arbitrary_types_allowed=True)

    id: str
    experiment_name: str
    cluster: str
    cmd: list[Any]
    parameters: dict[str, Any] = Field(default_factory=dict)
    parameter_format: Literal["argparse", "eq"] = "argparse"
    depends_on: list[RunDef | str] = Field(default_factory=list)
    executor: ExecutorDef = Field(default_factory=ExecutorDef)
    check_heartbeat: bool = False  # accepted for compatibility; heartbeats are always on
    is_abstract: bool = False
    max_retries: int = Field(0, ge=0)  # new: automatic requeues after a failure (exit != 0)
    movable: bool = True  # new: False keeps consolidation from ever interrupting the run
    duration: float | None = None  # new: expected run time, seconds or "HH:MM:SS"
    hold: bool = False  # new: the run starts `held` when it first appears
    slots: int = Field(1, ge=1)  # new: slots of one node the run needs (their CPU and GPU blocks)
    checkpoint_interval: float | None = None  # new: seconds between its checkpoints (None: the cluster's)
    restart_cost: float | None = None  # new: seconds a restarted attempt spends before new progress
    checkpoint_on_term: bool | None = None  # new: True if it saves its state on SIGTERM
    priority: int | None = None  # new: higher starts first (None: its experiment's, else 0)

    @field_validator("duration", "checkpoint_interval", "restart_cost", mode="before")
    @classmethod
    def _duration(cls, v: Any, info: ValidationInfo) -> Any:
        if v is None:
            return None
        try:
            return parse_duration(v)
        except ValueError as exc:  # parse_duration says "duration"; name the field given
            raise ValueError(str(exc).replace("duration", info.field_name or "duration", 1)) from None

    @field_validator("cmd", mode="before")
    @classmethod
    def _cmd_list(cls, v: Any) -> Any:
        if isinstance(v, tuple):
            v = list(v)
        if isinstance(v, list):
            for i, item in enumerate(v):
                render_value(item, f"cmd[{i}]")  # fail at definition time, with the index
        return v

    @field_validator("parameters", mode="after")
    @classmethod
    def _params(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key, value in v.items():
            render_value(value, f"parameter {key!r}")
        return v

    @classmethod
    def create_abstract(cls, **kwargs: Any) -> RunDef:
        """A template run that is never executed; `fork()` it into real runs."""
        if any(x in kwargs for x in ("id", "is_abstract")):
            raise ValueError("Cannot define id or is_abstract.")
        return cls(id=ABSTRACT_ID, is_abstract=True, **kwargs)

    def fork(self, run_id: str) -> RunDef:
        """A deep copy with a new id, never abstract."""
        return self.model_copy(deep=True, update={"id": run_id, "is_abstract": False})

    @property
    def global_id(self) -> str:
        if self.is_abstract:
            return "@abstract_run"
        return f"{self.experiment_name}@{self.id}"

    @property
    def path(self) -> PathDef:
        """This run's directory (W/<experiment>/<run>, as the original), resolved at execution time; in
        another run's command it still names this run's directory."""
        return PathDef(ph.run_dir_of(self.experiment_name, self.id))

    @property
    def log_path(self) -> PathDef:
        """This run's log directory (`path / "logs"`), resolved at execution time."""
        return PathDef(ph.log_dir_of(self.experiment_name, self.id))

    @property
    def metadata_path(self) -> PathDef:
        """`path / "juqueue-run.json"`, as the original named it."""
        return self.path / "juqueue-run.json"

    def _own(self, value: str) -> str:
        """Placeholders naming this run (or the template it was forked from) in their short form."""
        return ph.as_own(value, self.experiment_name, (self.id, ABSTRACT_ID))

    def parsed_cmd(self, work_dir: str | os.PathLike | None = None, **_: Any) -> list[str]:
        """The rendered command (the original's name). With `work_dir`, placeholders are
        resolved against it as an attempt would see them; without, they stay in."""
        cmd = [self._own(c) for c in render_cmd(self.cmd, self.parameters, self.parameter_format)]
        if work_dir is None:
            return cmd
        work = WorkDir(Path(work_dir))
        return [ph.resolve(c, work, self.experiment_name, self.id) for c in cmd]

    def dependency_ids(self) -> list[str]:
        """`depends_on` as global ids; a bare id means a run of the same experiment."""
        out = []
        for dep in self.depends_on:
            if isinstance(dep, RunDef):
                if dep.is_abstract:
                    raise ValueError("depends_on names an abstract run")
                out.append(dep.global_id)
            elif "@" in dep:
                out.append(dep)
            else:
                out.append(f"{self.experiment_name}@{dep}")
        return out

    def to_spec(self, source_file: str = "") -> RunSpec:
        """The plain, validated `RunSpec` every other layer uses."""
        if self.is_abstract:
            raise ValueError("an abstract run cannot be executed; fork() it first")
        executor = self.executor.to_spec()
        executor.env = {k: self._own(v) for k, v in executor.env.items()}
        executor.python_search_path = [self._own(p) for p in executor.python_search_path]
        executor.prepend_script = [self._own(line) for line in executor.prepend_script]
        executor.venv = None if executor.venv is None else self._own(executor.venv)
        return RunSpec(
            experiment=self.experiment_name,
            id=self.id,
            cluster=self.cluster,
            cmd=self.parsed_cmd(),
            executor=executor,
            depends_on=self.dependency_ids(),
            max_retries=self.max_retries,
            movable=self.movable,
            duration=self.duration,
            hold=self.hold,
            slots=self.slots,
            checkpoint_interval=self.checkpoint_interval,
            restart_cost=self.restart_cost,
            checkpoint_on_term=self.checkpoint_on_term,
            priority=self.priority or 0,
            source_file=source_file,
        )

    def __str__(self) -> str:
        return f"RunDef(uid={self.id}, experiment={self.experiment_name})"


class ExperimentDef(ABC):
    """Base of an experiment file's class: a unique `name` and its `runs`."""

    @property
    @abstractmethod
    def name(self) -> str:
        """Unique name of this experiment."""
        raise NotImplementedError()

    @property
    @abstractmethod
    def runs(self) -> list[RunDef]:
        """The run definitions of this experiment."""
        raise NotImplementedError()

    @property
    def path(self) -> PathDef:
        """The experiment's directory in the work dir (W/<experiment>), resolved at
        execution time; usable in commands, parameters and executor fields."""
        return PathDef(ph.experiment_dir_of(self.name))

    @property
    def fail_period(self) -> int:
        """Kept for compatibility; JuQueue decides by exit code alone."""
        return 5

    def __str__(self) -> str:
        return f"Experiment(name={self.name})"
