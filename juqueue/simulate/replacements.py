"""Wall time without a gap, simulated: controller.replacements' tick step over the simulation's
state. The decision is `policy.replacement.replacements_to_start`, imported; this module keeps
what it decides over and carries out what it returns, as the controller does: the replacement
is an ordinary node start (queue wait, max_jobs), the runs it is for get its slots reserved
(the cluster's move reservation, so a drained run lands there at once when it is up), and it is
protected (policy.replacement.protected) from consolidation and the idle timeout until its
predecessor's warning + grace.

Cost: only nodes whose warning is at most the lead away (`windowed`) are looked at, and the
policy is not called when it provably starts nothing (no unreplaced windowed node with a run
outliving its warning, or max_jobs reached); `check_fast_path` calls it then and asserts that.
The controller step evaluates this on its ticks, on the first tick of each node's window, and on the
first tick after any change while a windowed node has no replacement: in between nothing that
the decision reads changes.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

from juqueue.policy.duration import expected_duration
from juqueue.policy.replacement import (Replacement, ReplacementSettings, RunAtWarning, WarnedNode, protected,
                                        replacements_to_start, runs_outliving)
from juqueue.policy.slot_placement import RunDemand
from juqueue.simulate.cluster import SimCluster
from juqueue.simulate.state import NodeState, SimNode


class Replacements:
    """One simulation's replacement jobs: which nodes are within their lead, which have one.
    `start_node` is the simulation's (which a test may watch), not the cluster's own."""

    def __init__(self, cluster: SimCluster, start_node: Callable[[float], SimNode], check_fast_path: bool) -> None:
        c = cluster.c
        self.cluster, self.start_node, self.check_fast_path = cluster, start_node, check_fast_path
        self.lead_s = c.replacement_lead_s
        self.settings = ReplacementSettings(c.replacement_lead_s, c.num_slots, c.max_jobs, c.grace_period_s)
        self.windows: list[tuple[float, int, SimNode]] = []  # (warning - lead, seq, node) of up nodes, a heap
        self.windowed: dict[str, SimNode] = {}  # up nodes whose warning is at most the lead away
        self.successor: dict[str, SimNode] = {}  # node -> its live replacement
        self.guarded: dict[str, SimNode] = {}  # replacements that may still be protected
        self._seq = 0

    # ---------------------------------------------------------------- the simulation's hooks
    def node_up(self, node: SimNode) -> float | None:
        """The node's window opens at its warning - lead: when to look (None: it has no warning)."""
        if node.warning_at is None:
            return None
        self._seq += 1
        start = node.warning_at - self.lead_s
        heapq.heappush(self.windows, (start, self._seq, node))
        return start

    def node_gone(self, node: SimNode) -> None:
        self.windowed.pop(node.name, None)
        self.guarded.pop(node.name, None)
        if node.replaces is not None and self.successor.get(node.replaces) is node:
            del self.successor[node.replaces]

    def waiting(self) -> bool:
        """A node within its lead has no replacement yet and one could start: a change may call
        for one. (At max_jobs none can; a node's end, itself a change, makes room.)"""
        return len(self.cluster.nodes) < self.cluster.c.max_jobs and any(name not in self.successor for name in self.windowed)

    def protected_count(self, now: float) -> int:
        """Accepting nodes consolidation leaves out now (NodeSnapshot.protected)."""
        if not self.guarded:
            return 0
        for name in [n for n, node in self.guarded.items() if not protected(node.protected_until, now)]:
            del self.guarded[name]
        return len(self.guarded)

    # ---------------------------------------------------------------- the tick step
    def start_due(self, now: float) -> list[SimNode]:
        """Replacements.start_due: start what replacements_to_start asks for; the nodes started."""
        cluster = self.cluster
        windows = self.windows
        while windows and windows[0][0] <= now:
            node = heapq.heappop(windows)[2]
            if node.state is NodeState.UP:
                self.windowed[node.name] = node
        if not self.windowed or (len(cluster.nodes) >= cluster.c.max_jobs and not self.check_fast_path):
            return []
        medians: dict[str, float | None] = {}
        warned = [self._warned(node, medians) for node in self.windowed.values()]
        room = cluster.c.max_jobs - len(cluster.nodes)
        if room <= 0 or not any(not w.replaced and now < w.warning_at and runs_outliving(w, now) for w in warned):
            if self.check_fast_path:
                assert not self._plan(warned, now), "replacements_to_start started a node the fast path skipped"
            return []
        started = []
        for rep in self._plan(warned, now):
            node = self.start_node(now)
            node.replaces, node.protected_until = rep.node, rep.protect_until
            self.successor[rep.node] = self.guarded[node.name] = node
            for gid in rep.runs:
                cluster.reserve(cluster.runs[gid], node)
            cluster.result.replacements += 1
            started.append(node)
        return started

    def _plan(self, warned: list[WarnedNode], now: float) -> list[Replacement]:
        cluster = self.cluster
        return replacements_to_start(warned, cluster.slot_nodes(now), (RunDemand(r.gid, r.slots) for r in cluster.ready),
                                     self.settings, len(cluster.nodes), now, cluster.reserved_slots())

    def _warned(self, node: SimNode, medians: dict[str, float | None]) -> WarnedNode:
        """Replacements._warned: the node's runs with their expected ends (attempt start + expected);
        `medians`: each experiment's expected duration, filled as needed (one median per look)."""
        completed = self.cluster.completed
        runs = []
        for gid in sorted(node.runs):  # the controller's order
            run = node.runs[gid]
            expected = run.own_expected
            if expected is None:
                experiment = run.spec.experiment
                if experiment not in medians:
                    medians[experiment] = expected_duration(None, completed.get(experiment, ()))
                expected = medians[experiment]
            runs.append(RunAtWarning(gid, run.slots, None if expected is None else run.started_at + expected,
                                     estimated=run.own_expected is None))
        assert node.warning_at is not None
        return WarnedNode(node.name, node.warning_at, tuple(runs), replaced=node.name in self.successor)
