"""Wall time without a gap, carried out: on each tick, the replacement jobs that
`juqueue.policy.replacement` asks for are submitted, tied to the node they replace, and the
slots of the runs they are for are reserved on them (the runs the warning drains go there
first, through the same reservation a consolidation move uses).

A replacement is protected until its predecessor's warning + grace period: consolidation
does not count it against the target nor make it surplus (`NodeSnapshot.protected`), and
the idle timeout does not release it (`Fleet.stop_idle_nodes`). Both facts are stored on
the node (`replaces`, `protected_until`), so a `serve` restart keeps them; the reservations
live in memory only, and after a restart drained runs are placed like any others.
"""

from __future__ import annotations

import logging

from juqueue.controller.budgets import BudgetKeeper
from juqueue.controller.fleet import Fleet
from juqueue.controller.state import ControllerState, NodeInfo
from juqueue.policy.replacement import ReplacementSettings, RunAtWarning, WarnedNode, replacements_to_start
from juqueue.status import NodeState

log = logging.getLogger(__name__)


class Replacements:
    def __init__(self, state: ControllerState, fleet: Fleet, budgets: BudgetKeeper) -> None:
        self.s = state
        self.fleet = fleet
        self.budgets = budgets

    def _warned(self, node: NodeInfo, replaced: set[str], now: float) -> WarnedNode | None:
        s = self.s
        warning = s.warning_at(node)
        if warning is None or node.state != NodeState.UP or node.emptying:
            return None
        runs = []
        for gid in sorted(node.runs):
            run = s.runs.get(gid)
            if run is not None:
                expected = s.expected_run_s(run)
                end = None if expected is None else s.attempt_started(run, now) + expected
                runs.append(RunAtWarning(gid, run.slots, end, estimated=run.duration_s is None))
        return WarnedNode(node.name, warning, tuple(runs), replaced=node.name in replaced)

    def start_due(self, now: float) -> None:
        s = self.s
        if s.stopping:
            return
        replaced = {n.replaces for n in s.nodes.values() if n.replaces and n.state.is_live}
        for name, spec in s.config.clusters.items():
            if spec.replacement_lead <= 0 or s.health[name].paused_reason is not None:
                continue
            nodes = [n for n in s.nodes.values() if n.cluster == name]
            warned = [w for w in (self._warned(n, replaced, now) for n in nodes) if w is not None]
            if not warned:
                continue
            settings = ReplacementSettings(spec.replacement_lead, spec.num_slots, spec.max_jobs, spec.grace_period)
            live = sum(1 for n in nodes if n.state.is_live)
            plan = replacements_to_start(warned, s.slot_nodes(now, name), s.ready_demands(name), settings, live, now,
                                         s.reserved)
            for rep in plan:
                if self.budgets.any_caps() and self.budgets.cluster_refusal(name, spec, now):
                    break
                new = self.fleet.start_node(spec, now)
                if new is None:
                    break  # the failed start pauses the cluster as any other would
                new.replaces, new.protected_until = rep.node, rep.protect_until
                s.mark_node_dirty(new)
                for gid in rep.runs:
                    s.reserve(s.runs[gid], new.name)
                    s.batch.event(gid, "replacement", s.runs[gid].attempt, rep.node,
                                  f"{new.name} started to take it after {rep.node}'s wall-time warning", now)
                log.info("wall time: %s started to replace %s before its warning (for %s)", new.name, rep.node,
                         ", ".join(rep.runs))
