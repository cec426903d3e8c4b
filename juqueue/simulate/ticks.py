"""Tick thinning: which of the controller's ticks the simulation evaluates.

Ticks lie on a fixed grid (`tick_s`), but a plan is O(nodes x runs per node) and is what takes
the time at 1,000 nodes, so only ticks that can decide something are evaluated: the first tick
after a change while there is a surplus, the tick after a move was proposed (the re-check), the
tick when an idle node's timeout runs out, the tick when the last plan's `consolidate_after not
reached` ends (no move can come before; the plan says until when), the tick when a replacement's
protection ends, and, while a surplus waits for a reason time alone may lift (a cooldown ends,
lost and saved work change), one `recheck_max_s` (the median run / 20, at least a tick, at most
300 s) after the last plan: a move that becomes possible with time alone, nothing else changing,
comes up to that much later than in the controller. A tick asked for by the replacement decision
alone (a "check", see `replacements`) decides nothing else.
"""

from __future__ import annotations

import math
import statistics
from typing import Protocol

from juqueue.policy.consolidation_model import ClusterPlan, Refusal
from juqueue.simulate.cluster import SimCluster
from juqueue.simulate.events import Ev

RECHECK_FRACTION, RECHECK_MAX_S = 1 / 20, 300.0  # a waiting surplus is looked at again after median/20 (<= 300 s)


class Consolidating(Protocol):
    """What the tick plan reads of the controller's step after a batch."""

    proposal: tuple | None  # the last evaluated tick's (node, moves), to be re-checked

    def has_surplus(self, t: float) -> bool: ...

    def replacement_waiting(self) -> bool: ...


class Ticks:
    """The ticks to evaluate, pushed as TICK events; the rest of the grid is skipped."""

    def __init__(self, cluster: SimCluster) -> None:
        self.cluster = cluster
        self.c, self.events = cluster.c, cluster.events
        median = statistics.median(r.duration_s for r in cluster.w.runs)
        self.recheck_max_s = max(self.c.tick_s, min(RECHECK_MAX_S, median * RECHECK_FRACTION))
        self.asked: dict[float, bool] = {}  # ticks to evaluate -> only a re-check's
        self.checks: set[float] = set()  # ticks asked for by replacements only (Replacements.start_due)
        self.recheck_at: float | None = None  # the next time-driven look at a waiting surplus
        self.too_soon_until = -math.inf  # the last plan's `consolidate_after not reached` lasts until then

    def at(self, at: float, recheck: bool = False) -> None:
        """Evaluate the first tick at or after `at`."""
        grid = self.c.tick_s
        at = math.ceil(at / grid - 1e-9) * grid
        if recheck:
            self.recheck_at = at
        if at not in self.asked and at not in self.checks:
            self.events.push(at, Ev.TICK, None)
        self.asked[at] = self.asked.get(at, True) and recheck  # True: only a re-check asked for it

    def check_at(self, at: float) -> None:
        """A tick for the replacement decision alone (the rest of the tick decides nothing then)."""
        grid = self.c.tick_s
        at = math.ceil(at / grid - 1e-9) * grid
        if at not in self.asked and at not in self.checks:
            self.events.push(at, Ev.TICK, None)
        self.checks.add(at)

    def due(self, t: float) -> bool:
        """A tick asked for at t, unless only by a re-check that a later plan put off."""
        only_recheck = self.asked.pop(t, None)
        return only_recheck is not None and (not only_recheck or self.recheck_at == t)

    def note_refusal(self, plan: ClusterPlan, t: float) -> None:
        """When to look again while a surplus waits (see the module's docstring)."""
        if plan.refusal is Refusal.TOO_SOON:
            after = self.c.consolidate_after_s
            self.too_soon_until = max((self.cluster.last_up_at or t) + after, (plan.surplus_since or t) + after)
            self.at(max(self.too_soon_until, t + self.c.tick_s))
        elif plan.empty is None and plan.refusal is not None:
            # Time alone may lift it (cooldowns end, lost and saved work change): look again
            # if nothing else made us look within recheck_max_s.
            self.at(t + self.recheck_max_s, recheck=True)

    def schedule(self, t: float, step: Consolidating) -> None:
        """After a batch: the ticks that may decide something next."""
        cluster = self.cluster
        grid = self.c.tick_s
        next_grid = math.floor(t / grid + 1e-9) * grid + grid
        if step.proposal is not None:
            self.at(next_grid)  # the re-check
        if cluster.changed:
            if step.has_surplus(t):
                self.at(max(next_grid, self.too_soon_until))
            if step.replacement_waiting():
                self.check_at(next_grid)
        if cluster.empty_up:
            timeout = self.c.idle_timeout_s
            due = min(max(n.idle_since + timeout, n.protected_until or -math.inf)  # type: ignore[operator]
                      for n in cluster.empty_up.values() if n.idle_since is not None)
            self.at(max(next_grid, due))
