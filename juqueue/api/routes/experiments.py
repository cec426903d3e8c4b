"""Experiments: per experiment its runs per status, node-hours, budget and projection, the file it
came from and its definition errors."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from juqueue.api.auth import require_token
from juqueue.api.definition_errors import controller_errors, error_details
from juqueue.api.models.errors import error_responses
from juqueue.api.deps import ContextDep
from juqueue.api.models.experiments import ExperimentModel
from juqueue.api.routes.usage import usage_totals
from juqueue.status import RunStatus

router = APIRouter(prefix="/api", tags=["experiments"], dependencies=[Depends(require_token)],
                   responses=error_responses(401, 503))


@router.get("/experiments", summary="Experiments: runs per status, node-hours, budget, projection, errors",
            response_model=list[ExperimentModel])
def list_experiments(ctx: ContextDep) -> list[ExperimentModel]:
    """Every experiment the store knows (defined or not) and every one a definition error names.
    `spent_node_hours` is what its cap counts (its `node_hours`); `projected_node_hours` what its
    queued and live runs are expected to need (0: none left; null: no duration known)."""
    c = ctx.controller

    def snapshot() -> tuple:
        texts, known = controller_errors(c)
        return texts, known, c.budgets.experiments_view()  # type: ignore[attr-defined]

    texts, known, budgets = c.call(snapshot)  # type: ignore[misc]
    rows = {r.name: r for r in ctx.store.experiments()}
    counts = ctx.store.experiment_status_counts()
    usage = usage_totals(ctx.store)["experiments"]
    errors = error_details(texts, known, {name: r.source_file for name, r in rows.items()})
    names = sorted(set(rows) | set(counts) | {e.experiment for e in errors if e.experiment})
    out = []
    for name in names:
        row, spent, budget = rows.get(name), usage.get(name) or {}, budgets.get(name) or {}
        per_status = {s.value: 0 for s in RunStatus}
        per_status.update(counts.get(name, {}))
        source = row.source_file if row is not None and row.source_file else None
        source = source or next((e.file for e in errors if e.experiment == name and e.file), None)
        out.append(ExperimentModel(
            name=name, source_file=source, defined=row.defined if row is not None else False,
            counts=per_status, total=sum(per_status.values()),
            node_hours=spent.get("node_hours", 0.0), busy_slot_hours=spent.get("busy_slot_hours", 0.0),
            efficiency=spent.get("efficiency"), lost_hours=spent.get("lost_hours", 0.0),
            budget_node_hours=budget.get("budget_node_hours"), spent_node_hours=spent.get("node_hours", 0.0),
            projected_node_hours=budget.get("projected_node_hours", 0.0) if budget else 0.0,
            budget_reason=budget.get("reason"),
            errors=[e for e in errors if e.experiment == name or (source is not None and e.file == source)],
        ))
    return out
