"""What the API needs from the running server, handed in (no globals, no work at import)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from juqueue.controller.controller import Controller
from juqueue.definitions.models import ClusterSpec
from juqueue.paths import WorkDir
from juqueue.store.store import Store


@dataclass
class AppContext:
    store: Store
    controller: Controller
    token: str
    work: WorkDir
    # clusters.yaml as last applied: an immutable snapshot the controller replaces after a reload
    clusters: Callable[[], Mapping[str, ClusterSpec]]
    port: int
    reload: Callable[..., dict]  # reload(yes=...): evaluates the def dir in a subprocess and applies it; the summary
    request_stop: Callable[[bool], dict]  # (cancel_jobs) -> what will happen; the server stops shortly after
    flower_url: str | None = None
    stopping: Callable[[], bool] = lambda: False  # true once the server shuts down: open streams end
    loading: Callable[[], bool] = lambda: False  # true while the first reload after start runs
