"""clusters.yaml: a mapping of cluster name -> fields with `type: local|slurm`.

This is the original JuQueue's format, so its files load unchanged: a local cluster's
`cores`/`memory` are accepted, `scaling_policy` is kept, and the dask-jobqueue keys its
SLURM clusters passed through are accepted as aliases or ignored with a warning.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any, Mapping

import yaml
from pydantic import ValidationError

from juqueue.backends.registry import cluster_types
from juqueue.definitions.models import ClusterSpec
from juqueue.errors import ConfigError


class ClusterConfigWarning(UserWarning):
    """A clusters.yaml key that is accepted but means nothing here."""


# dask-jobqueue spelling -> ours (slurm)
SLURM_ALIASES: dict[str, str] = {
    "queue": "partition",
    "project": "account",
    "walltime": "time",
    "cores": "cpus_per_task",
    "job_extra": "extra_directives",
    "job_extra_directives": "extra_directives",
    "env_extra": "prologue",
    "job_script_prologue": "prologue",
}

# dask-jobqueue / dask-distributed keys with no meaning here: loaded with a warning
IGNORED_KEYS: frozenset[str] = frozenset({
    "interface", "log_directory", "death_timeout", "local_directory", "shebang", "processes",
    "name", "nanny", "job_cpu", "job_mem", "worker_extra_args", "extra", "scheduler_options",
    "protocol", "security", "asynchronous", "silence_logs", "dashboard_address", "host",
    "scheduler_cls", "config_name", "n_workers", "shared_temp_directory", "worker_command",
    "header_skip", "job_directives_skip", "job_cls", "loop", "threads", "worker_class",
})

_SLURM_ONLY = {"partition", "account", "qos", "time", "cpus_per_task", "gres", "constraint", "exclusive",
               "extra_directives", "prologue", "python", "job_name", "signal_lead", "poll_interval",
               "replacement_lead"}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_LIST_FIELDS = {"extra_directives", "prologue"}


def _fail(path: Path, cluster: str | None, field: str | None, message: str) -> ConfigError:
    where = f"{path}"
    if cluster is not None:
        where += f": cluster {cluster!r}"
    if field is not None:
        where += f": field {field!r}"
    return ConfigError(f"{where}: {message}")


def _normalize(path: Path, name: str, raw: dict[str, Any]) -> dict[str, Any]:
    """Aliases applied, meaningless keys dropped with a warning, unknown keys rejected."""
    ctype = raw.get("type")
    if ctype is None:
        raise _fail(path, name, "type", f"missing required field ({' or '.join(cluster_types())})")
    if ctype not in cluster_types():
        raise _fail(path, name, "type", f"unknown cluster type {ctype!r} ({' or '.join(cluster_types())})")
    known = set(ClusterSpec.model_fields) - {"name"}
    out: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(key, str):
            raise _fail(path, name, str(key), "field names must be strings")
        target = key
        if ctype == "slurm" and key in SLURM_ALIASES:
            target = SLURM_ALIASES[key]
        elif key in IGNORED_KEYS:
            warnings.warn(f"{path}: cluster {name!r}: field {key!r} (dask-jobqueue) means nothing "
                          "to JuQueue and is ignored", ClusterConfigWarning, stacklevel=3)
            continue
        elif key not in known:
            raise _fail(path, name, key, "unknown field")
        if target in origin:
            raise _fail(path, name, key, f"sets {target!r}, which {origin[target]!r} already sets")
        if target in _LIST_FIELDS and isinstance(value, str):
            value = [value]
        out[target] = value
        origin[target] = key
    meaningless = (_SLURM_ONLY if ctype == "local" else set()) & set(out)
    for key in sorted(meaningless):
        warnings.warn(f"{path}: cluster {name!r}: field {origin[key]!r} only applies to slurm clusters "
                      "and is ignored", ClusterConfigWarning, stacklevel=3)
    return out


def parse_cluster(path: Path, name: str, raw: Any, defaults: Mapping[str, Any] | None = None) -> ClusterSpec:
    """One cluster's fields as a validated ClusterSpec; errors name file, cluster and field.
    `defaults` fill the fields the cluster does not set (`serve`'s heartbeat settings)."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise _fail(path, str(name), None, "cluster names may hold letters, digits, '_', '.', '-'")
    if not isinstance(raw, dict):
        raise _fail(path, name, None, "expected a mapping of fields")
    fields = {**(defaults or {}), **_normalize(path, name, raw)}
    try:
        spec = ClusterSpec(name=name, **fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or None
        raise _fail(path, name, field, err["msg"]) from None
    if spec.type == "slurm" and spec.signal_lead < spec.grace_period + 60:
        raise _fail(path, name, "signal_lead",
                    f"{spec.signal_lead} s is less than grace_period + 60 s = {spec.grace_period + 60:g} s "
                    "(SLURM may signal up to 60 s early)")
    return spec


def load_clusters(path: Path, defaults: Mapping[str, Any] | None = None) -> dict[str, ClusterSpec]:
    """Read clusters.yaml; raise ConfigError naming file, cluster and field on any problem.
    `defaults` (field -> value) fill what a cluster leaves out; the cluster's own keys win."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (a def dir needs a clusters.yaml)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{path}: YAML syntax error{line}: {getattr(exc, 'problem', None) or exc}") from None
    if data is None:
        raise ConfigError(f"{path}: is empty (define at least one cluster)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of cluster name -> fields")
    return {str(name): parse_cluster(Path(path), name, raw, defaults) for name, raw in data.items()}
