"""Where node backends are found: `local` and `slurm` are built in; any other cluster `type`
is a backend registered by a module named in `JUQUEUE_BACKENDS` (comma-separated, imported
once, when clusters.yaml is first read), which calls `register_backend` on import.

Kept free of the backends themselves and of the definitions, so clusters.yaml's parser can ask
which types exist without importing a backend."""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from juqueue.backends.base import NodeBackend
    from juqueue.paths import WorkDir

BUILT_IN = ("local", "slurm")
ENV_VAR = "JUQUEUE_BACKENDS"

_factories: dict[str, "Callable[[WorkDir], NodeBackend]"] = {}
_loaded: set[str] = set()


def register_backend(kind: str, factory: "Callable[[WorkDir], NodeBackend]") -> None:
    """Clusters of `type: kind` get their nodes from `factory(work_dir)` (one instance per serve)."""
    if kind in BUILT_IN:
        raise ValueError(f"backend type {kind!r} is built in and cannot be registered again")
    _factories[kind] = factory


def load_env_modules(environ: "dict[str, str] | None" = None) -> None:
    """Import the modules `JUQUEUE_BACKENDS` names (once each); a module that cannot be
    imported is an error naming it and the variable."""
    from juqueue.errors import ConfigError

    raw = (os.environ if environ is None else environ).get(ENV_VAR, "")
    for name in (part.strip() for part in raw.split(",")):
        if not name or name in _loaded:
            continue
        try:
            importlib.import_module(name)
        except Exception as exc:
            raise ConfigError(f"{ENV_VAR}: backend module {name!r} could not be imported: {exc}") from exc
        _loaded.add(name)


def cluster_types() -> tuple[str, ...]:
    """Every cluster `type` clusters.yaml may name: the built-in ones, then the registered ones."""
    load_env_modules()
    return BUILT_IN + tuple(sorted(_factories))


def registered_backends(work: "WorkDir") -> "dict[str, NodeBackend]":
    """One instance of each registered backend, by type."""
    load_env_modules()
    return {kind: factory(work) for kind, factory in _factories.items()}
