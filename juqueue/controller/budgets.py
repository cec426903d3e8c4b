"""Node-hour budgets carried out: what a cluster or an experiment spent (from the store, at
most every `REFRESH_S` and after a node ends), what its live nodes can still bill, and whether
one more node fits (`juqueue.policy.budget`). Running runs are never stopped for a budget."""

from __future__ import annotations

import time
from typing import Callable

from sqlalchemy.exc import SQLAlchemyError

from juqueue.accounting import compute_usage
from juqueue.backends.slurm_parse import SlurmParseError, parse_time
from juqueue.controller.state import ControllerState, NodeInfo
from juqueue.definitions.models import ClusterSpec
from juqueue.policy.budget import budget_reason, node_start_fits, projected_node_hours
from juqueue.status import RunStatus

REFRESH_S = 30.0


class BudgetKeeper:
    def __init__(self, state: ControllerState) -> None:
        self.s = state
        self.experiment_caps: dict[str, float] = {}  # from the definitions (budget_node_hours)
        self.spent_cluster: dict[str, float] = {}  # billed node-seconds
        self.spent_experiment: dict[str, float] = {}
        self._refreshed_at = -1e18
        self._live_nodes: frozenset[str] = frozenset()

    def set_experiment_caps(self, caps: dict[str, float], keep: set[str]) -> None:
        """A reload's budgets; experiments whose file failed to load keep the cap they had."""
        self.experiment_caps = {**{e: c for e, c in self.experiment_caps.items() if e in keep}, **caps}

    def any_caps(self) -> bool:
        return bool(self.experiment_caps) or any(c.budget_node_hours for c in self.s.config.clusters.values())

    def refresh(self, max_age_s: float = REFRESH_S) -> None:
        live = frozenset(self.s.nodes)  # a node that ended (left memory) changes what was spent
        if live == self._live_nodes and time.monotonic() - self._refreshed_at < max_age_s:
            return
        nodes, attempts, ended = self.s.store.usage_inputs()  # O(nodes + live attempts): running totals
        usage = compute_usage(nodes, attempts, self.s.now(), ended)
        self.spent_cluster = {c: t.node_seconds for c, t in usage.clusters.items()}
        self.spent_experiment = {e: t.node_seconds for e, t in usage.experiments.items()}
        self._refreshed_at, self._live_nodes = time.monotonic(), live

    # ---------------------------------------------------------------- the gate
    def node_wall_s(self, spec: ClusterSpec) -> float:
        """What one more node may bill: its wall time (SLURM `time`), else `budget_step`."""
        if spec.type == "slurm" and spec.time:
            try:
                limit = parse_time(spec.time)
            except SlurmParseError:
                limit = None
            if limit:
                return float(limit)
        return spec.budget_step

    def _remaining_s(self, node: NodeInfo, spec: ClusterSpec | None, now: float) -> float:
        if node.time_limit_at is not None:
            return max(0.0, node.time_limit_at - now)
        if spec is not None and spec.type == "slurm":
            return self.node_wall_s(spec)
        return spec.budget_step if spec is not None else 3600.0

    def cluster_refusal(self, name: str, spec: ClusterSpec, now: float) -> str | None:
        """Why no node of this cluster may start now (its own cap), or None."""
        cap = spec.budget_node_hours
        if cap is None:
            return None
        self.refresh()
        live = sum(self._remaining_s(n, spec, now) for n in self.s.nodes.values() if n.cluster == name and n.state.is_live)
        spent = self.spent_cluster.get(name, 0.0)
        if node_start_fits(spent, live, self.node_wall_s(spec), cap):
            return None
        return budget_reason(spent, cap)

    def experiment_refusal(self, experiment: str, spec: ClusterSpec, now: float) -> str | None:
        """Why runs of this experiment may not make a node start: spent, plus what the live nodes
        its runs are on can still bill, plus the new node, would pass its cap."""
        cap = self.experiment_caps.get(experiment)
        if cap is None:
            return None
        self.refresh()
        nodes = {self.s.runs[g].node for g in self.s.runs if g.split("@", 1)[0] == experiment and self.s.runs[g].node}
        live = sum(self._remaining_s(self.s.nodes[n], self.s.config.clusters.get(self.s.nodes[n].cluster), now)
                   for n in nodes if n in self.s.nodes)
        spent = self.spent_experiment.get(experiment, 0.0)
        if node_start_fits(spent, live, self.node_wall_s(spec), cap):
            return None
        return budget_reason(spent, cap)

    # ---------------------------------------------------------------- shown
    def projection_h(self, runs: list, num_slots: int, now: float) -> float | None:  # type: ignore[type-arg]
        left = []
        for run in runs:
            expected = self.s.expected_run_s(run)
            if expected is not None and run.status.is_live and run.started_ts is not None:
                expected = max(0.0, expected - (now - run.started_ts))
            left.append(expected)
        return projected_node_hours(left, num_slots)

    def status(self) -> dict[str, dict]:
        """Per cluster and per experiment with a cap (others: None): spent, cap, projection, the
        refusal. Without any cap it reads nothing (status is polled often)."""
        s = self.s
        now = s.now()
        out: dict[str, dict] = {"clusters": {name: None for name in s.config.clusters}, "experiments": {}}
        if not self.any_caps():
            return out
        try:
            self.refresh(max_age_s=5.0)  # what a person reads: fresher than the gate needs
        except SQLAlchemyError:
            pass  # the store is away: show what was last known (status says the store is unavailable)
        remaining = [r for r in s.runs.values() if r.status in (RunStatus.QUEUED, RunStatus.ASSIGNED, RunStatus.RUNNING)]
        for name, spec in s.config.clusters.items():
            if spec.budget_node_hours is None:
                continue
            runs = [r for r in remaining if r.cluster == name]
            out["clusters"][name] = {
                "budget_node_hours": spec.budget_node_hours,
                "spent_node_hours": round(self.spent_cluster.get(name, 0.0) / 3600, 6),
                "projected_node_hours": _round(self.projection_h(runs, spec.num_slots, now)),
                "reason": _quiet(lambda: self.cluster_refusal(name, spec, now)),
            }
        for exp, cap in sorted(self.experiment_caps.items()):
            runs = [r for r in remaining if r.experiment == exp]
            spec = s.config.clusters.get(runs[0].cluster) if runs else None
            out["experiments"][exp] = {
                "budget_node_hours": cap,
                "spent_node_hours": round(self.spent_experiment.get(exp, 0.0) / 3600, 6),
                "projected_node_hours": _round(self.projection_h(runs, spec.num_slots if spec else 1, now)),
                "reason": _quiet(lambda: self.experiment_refusal(exp, spec, now)) if spec else None,
            }
        return out

    def experiment_caps_view(self) -> dict[str, dict]:
        """Each capped experiment's cap and why its runs may not start a node now (None: they
        may). From memory; the refusal reads the store at most every `REFRESH_S`."""
        s = self.s
        now = s.now()
        first_cluster: dict[str, str] = {}
        for r in s.runs.values():
            if r.experiment in self.experiment_caps and r.status in (RunStatus.QUEUED, RunStatus.ASSIGNED, RunStatus.RUNNING):
                first_cluster.setdefault(r.experiment, r.cluster)
        out: dict[str, dict] = {}
        for exp, cap in sorted(self.experiment_caps.items()):
            spec = s.config.clusters.get(first_cluster.get(exp, ""))
            out[exp] = {"budget_node_hours": cap,
                        "reason": _quiet(lambda: self.experiment_refusal(exp, spec, now)) if spec else None}
        return out


def _quiet(reason: Callable[[], str | None]) -> str | None:
    """A reason for status; None while the store cannot be read."""
    try:
        return reason()
    except SQLAlchemyError:
        return None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
