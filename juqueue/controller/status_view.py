"""What the API's overview reads of the controller, published by the controller thread so that a
read never waits for it.

`GET /api/status` and `GET /api/experiments` need the live nodes, the clusters' health and
scaling, the definition errors and the experiments' caps: state the controller thread owns. Asked
through `Controller.call`, a read waited for the batch under way (hundreds of ms with 100,000
runs, seconds with a busy feed). Instead the controller builds a `StatusView` (plain copies) after
a commit and replaces the published one whole; readers take that reference (one attribute read: no
lock, no wait). It is rebuilt after a commit when something changed or a reader asked since the
last one, at most every `min_interval_s` (the controller loop commits at least once a second, so
a view is at most about a second behind), and at once after a user command (a drain, a reload).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

from juqueue.controller.actions import UserActions
from juqueue.controller.budgets import BudgetKeeper
from juqueue.controller.config import ControllerConfig
from juqueue.controller.consolidator import Consolidator
from juqueue.controller.state import ControllerState
from juqueue.definitions.models import DefinitionError

log = logging.getLogger(__name__)

MIN_INTERVAL_S = 0.5  # a rebuild costs the controller thread about a millisecond per node


@dataclass(frozen=True)
class StatusView:
    """Copies taken on the controller thread; never changed after."""

    nodes: list[dict]  # live nodes as `Controller.nodes_snapshot` gives them
    health: Mapping[str, str | None]  # cluster -> why nothing starts on it
    definition_errors: list[str]
    error_details: Mapping[str, DefinitionError]  # the structured errors by their text
    clusters: Mapping[str, dict]  # `Controller.clusters_snapshot`
    experiment_caps: Mapping[str, dict]  # `BudgetKeeper.experiment_caps_view`
    taken_at: float = field(default_factory=time.monotonic)


class StatusViews:
    """The published view and when to rebuild it. `build` runs on the controller thread only."""

    def __init__(self, build: Callable[[], StatusView], min_interval_s: float = MIN_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._build = build
        self.min_interval_s = min_interval_s
        self.clock = clock
        self._view: StatusView | None = None
        self._built_at = float("-inf")
        self._wanted = False  # a reader took the view since it was built
        self._dirty = False  # a commit changed something since it was built

    def latest(self) -> StatusView | None:
        """The published view (any thread; None before the first one)."""
        self._wanted = True
        return self._view

    def wanted_now(self) -> None:
        """Rebuild at the next commit whatever the interval (after a user command)."""
        self._built_at = float("-inf")
        self._dirty = True

    def after_commit(self, changed: bool) -> None:
        """The controller thread committed (a batch, possibly empty): rebuild when due. A view
        that cannot be built leaves the last one (the batch is committed already)."""
        self._dirty = self._dirty or changed
        if (self._dirty or self._wanted) and self.clock() - self._built_at >= self.min_interval_s:
            try:
                self.publish()
            except Exception:
                log.exception("status view: could not build it; the last one stays")

    def publish(self) -> StatusView:
        """Build and publish now (at start, after a user command, after memory was rebuilt)."""
        view = self._build()
        self._view, self._built_at = view, self.clock()
        self._wanted = self._dirty = False
        return view


class StatusReads:
    """The controller's read side, as the API shows it (a base of `Controller`). The snapshots
    run on the controller thread (they build the view); `status_view` on any thread."""

    s: ControllerState
    config: ControllerConfig
    consolidator: Consolidator
    budgets: BudgetKeeper
    actions: UserActions
    views: StatusViews
    _thread: threading.Thread | None

    def status_view(self) -> StatusView:
        """The published copies (any thread; never waits). Without the controller thread (not
        started yet, or tests driving it batch by batch) it is built on the caller's."""
        running = self._thread is not None and self._thread.is_alive()
        return (self.views.latest() if running else None) or self.views.publish()

    def build_status_view(self) -> StatusView:
        caps = self.budgets.experiment_caps_view() if self.budgets.experiment_caps else {}  # it reads every run
        # built at commit, when nodes that just ended are still in memory: only the live ones
        live = [name for name, n in self.s.nodes.items() if n.state.is_live]
        return StatusView(self.nodes_snapshot(live), self.cluster_health(), list(self.s.definition_errors),
                          dict(self.actions.error_details), self.clusters_snapshot(), caps)

    def cluster_health(self) -> dict[str, str | None]:
        return {name: h.paused_reason for name, h in self.s.health.items()}

    def clusters_snapshot(self) -> dict[str, dict]:
        """Per cluster: target, policies, the consolidation under way, why a surplus waits, budget."""
        budgets = self.budgets.status()
        return {name: {**self.consolidator.status(name), "budget": budgets["clusters"].get(name)}
                for name in self.config.clusters}

    def nodes_snapshot(self, names: Iterable[str] | None = None) -> list[dict]:
        """Live nodes (or those named) as the API shows them, each with why it is surplus or kept."""
        verdicts = self.consolidator.node_verdicts()
        out = []
        nodes = self.s.nodes.values() if names is None else [self.s.nodes[m] for m in names if m in self.s.nodes]
        for n in sorted(nodes, key=lambda n: n.name):
            surplus = n.name in self.s.surplus
            why = verdicts.get(n.name)
            reason = why.reason if why is not None and why.surplus == surplus else None
            out.append(n.as_api(surplus=surplus, surplus_reason=reason if surplus else None,
                                kept_reason=None if surplus else reason))
        return out
