"""Experiments: per experiment its runs per status, node-hours, budget and projection, the file it
came from and its definition errors."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends

from juqueue.api.auth import require_token
from juqueue.api.context import AppContext
from juqueue.api.definition_errors import error_details
from juqueue.api.deps import ContextDep
from juqueue.api.models.errors import error_responses
from juqueue.api.models.experiments import ExperimentModel
from juqueue.api.models.status import DefinitionErrorModel
from juqueue.api.read_cache import PerStore
from juqueue.api.routes.usage import usage_totals
from juqueue.policy.budget import projected_node_hours
from juqueue.status import RunStatus
from juqueue.store.experiment_reads import RemainingWork
from juqueue.store.store import Store

router = APIRouter(prefix="/api", tags=["experiments"], dependencies=[Depends(require_token)],
                   responses=error_responses(401, 503))


@router.get("/experiments", summary="Experiments: runs per status, node-hours, budget, projection, errors",
            response_model=list[ExperimentModel])
def list_experiments(ctx: ContextDep) -> list[ExperimentModel]:
    """Every experiment the store knows (defined or not) and every one a definition error names.
    `spent_node_hours` is what its cap counts (its `node_hours`); `projected_node_hours` what its
    queued and live runs are expected to need (0: none left; null: some run's duration unknown),
    read at most every 5 s, like the node-hours."""
    view = ctx.controller.status_view()  # published by the controller thread: never waits for it
    texts, known, caps = view.definition_errors, view.error_details, view.experiment_caps
    rows = {r.name: r for r in ctx.store.experiments()}
    counts = ctx.store.experiment_status_counts()
    usage = usage_totals(ctx.store)["experiments"]
    remaining = _remaining_work(ctx.store)
    errors = error_details(texts, known, {name: r.source_file for name, r in rows.items()})
    names = sorted(set(rows) | set(counts) | {e.experiment for e in errors if e.experiment})
    out = []
    for name in names:
        row, spent, cap = rows.get(name), usage.get(name) or {}, caps.get(name) or {}
        per_status = {s.value: 0 for s in RunStatus}
        per_status.update(counts.get(name, {}))
        source = row.source_file if row is not None and row.source_file else None
        source = source or next((e.file for e in errors if e.experiment == name and e.file), None)
        out.append(ExperimentModel(
            name=name, source_file=source, defined=row.defined if row is not None else False,
            counts=per_status, total=sum(per_status.values()),
            node_hours=spent.get("node_hours", 0.0), busy_slot_hours=spent.get("busy_slot_hours", 0.0),
            efficiency=spent.get("efficiency"), lost_hours=spent.get("lost_hours", 0.0),
            budget_node_hours=cap.get("budget_node_hours"), spent_node_hours=spent.get("node_hours", 0.0),
            projected_node_hours=_projected(ctx, remaining.get(name)), budget_reason=cap.get("reason"),
            errors=_errors_of(errors, name, source),
        ))
    return out


# the remaining work reads every queued run's duration (100,000: tens of ms): at most 5 s old,
# read again ahead of time while clients keep asking (juqueue.api.read_cache)
_remaining: PerStore[Store, dict[str, RemainingWork]] = PerStore(lambda store: store.remaining_work(time.time()),
                                                                  max_age_s=5.0)


def _remaining_work(store: Store) -> dict[str, RemainingWork]:
    """Each experiment's remaining work, read at most every few seconds per store (like the usage totals)."""
    return _remaining.get(store)


def _projected(ctx: AppContext, work: RemainingWork | None) -> float | None:
    """Node-hours the remaining runs need packed on nodes of their cluster (the budget's rule)."""
    if work is None:
        return 0.0
    spec = ctx.clusters().get(work.cluster)
    hours = projected_node_hours([work.seconds], spec.num_slots if spec is not None else 1)
    return None if hours is None else round(hours, 6)


def _errors_of(errors: list[DefinitionErrorModel], name: str, source: str | None) -> list[DefinitionErrorModel]:
    return [e for e in errors if e.experiment == name or (e.experiment is None and source is not None and e.file == source)]
