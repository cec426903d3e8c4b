"""What the steps of `serve` share: the options and settings given, and what each step made.

A step fills its own fields in `start` and reads only fields of steps it requires. Fields
that a step may change while the server runs belong to the controller thread (see
`juqueue.serve.controller_step`)."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from juqueue.definitions.models import ClusterSpec
from juqueue.paths import WorkDir
from juqueue.serve.options import ServeOptions
from juqueue.settings import Settings

if TYPE_CHECKING:
    from juqueue.backends.base import NodeBackend
    from juqueue.broker.embedded import EmbeddedBroker
    from juqueue.controller.controller import Controller
    from juqueue.store.store import Store


@dataclass
class ServeContext:
    """One `serve`: its inputs, then each step's products (None until that step started)."""

    opts: ServeOptions
    settings: Settings
    work: WorkDir
    def_dir: Path
    # the work-dir step
    clusters: dict[str, ClusterSpec] = field(default_factory=dict)  # clusters.yaml as read at start, once
    token: str = ""
    # the listen step
    port: int = 0  # the API's TCP port; 0: none (--port -1, or --unix-socket alone)
    unix_socket: Path | None = None
    sockets: list[socket.socket] = field(default_factory=list)
    # the store step
    store: "Store | None" = None
    fresh_store: bool = False  # no runs yet: the original JuQueue's statuses may be adopted
    # the broker step
    broker_url: str = ""
    broker: "EmbeddedBroker | None" = None  # None with --broker (a broker we did not start)
    # the backends step: handed to the controller, whose thread alone changes the dict afterwards
    backends: "dict[str, NodeBackend]" = field(default_factory=dict)
    # the controller step
    controller: "Controller | None" = None
    slurm_jobs_alive: bool = False  # set when the controller stopped: the embedded broker then stays up
    # the reloader step: reload(yes=...) re-reads clusters.yaml and the definitions and applies them
    reload: "Callable[..., dict] | None" = None
    loading: bool = False  # the first reload after start runs in the background: runs may be missing till it is over
    # set by `juqueue stop` through the API
    cancel_jobs: bool = False

    @classmethod
    def create(cls, opts: ServeOptions, settings: Settings) -> "ServeContext":
        return cls(opts=opts, settings=settings, work=WorkDir(opts.work_dir.resolve()), def_dir=opts.def_dir.resolve())
