"""The backends step: how nodes start and end (local processes; SLURM jobs when clusters.yaml
has a slurm cluster). The dict is handed to the controller: from then on only the controller
thread changes it (a reload that adds the first slurm cluster adds the SLURM backend there)."""

from __future__ import annotations

import os
from typing import Mapping

from juqueue.backends.base import NodeBackend
from juqueue.definitions.models import ClusterSpec
from juqueue.paths import WorkDir
from juqueue.serve.context import ServeContext


def add_slurm_backend(backends: dict[str, NodeBackend], work: WorkDir, clusters: Mapping[str, ClusterSpec]) -> None:
    """The SLURM backend, once, when `clusters` has a slurm cluster: it polls as often as the
    most eager of them asks, and recognises the jobs by their names' common prefix."""
    if "slurm" in backends or not any(c.type == "slurm" for c in clusters.values()):
        return
    from juqueue.backends.slurm import SlurmBackend

    poll = min(c.poll_interval for c in clusters.values() if c.type == "slurm")
    prefixes = {c.job_name for c in clusters.values() if c.type == "slurm"}
    backends["slurm"] = SlurmBackend(work, poll_interval_s=poll, name_prefix=os.path.commonprefix(sorted(prefixes)))


class BackendsStep:
    """Reads ctx.clusters; fills ctx.backends. Stop undoes nothing: nodes are the controller's."""

    name = "backends"
    requires: tuple[str, ...] = ("workdir",)

    def start(self, ctx: ServeContext) -> None:
        from juqueue.backends.local import LocalBackend
        from juqueue.backends.registry import registered_backends

        backends: dict[str, NodeBackend] = {"local": LocalBackend(ctx.work), **registered_backends(ctx.work)}
        add_slurm_backend(backends, ctx.work, ctx.clusters)
        ctx.backends = backends

    def stop(self, ctx: ServeContext) -> None:
        pass
