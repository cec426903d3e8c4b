"""The overview (`GET /api/status`): counts, clusters with their nodes, definition errors."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from juqueue.api.models.nodes import NodeModel
from juqueue.api.models.usage import UsageTotalsModel


class DefinitionErrorModel(BaseModel):
    """One problem in one definition file (or in clusters.yaml), with what it belongs to."""

    text: str = Field(description="the error as `definition_errors` shows it")
    file: str | None = Field(None, description="the file at fault (null: not tied to one file)")
    experiment: str | None = Field(None, description="the experiment its file defines, when known (null: not known, "
                                                     "or the file defines several)")
    run: str | None = None
    field: str | None = None
    message: str = Field(description="the error without its place")


class BudgetModel(BaseModel):
    """A node-hour cap and what it allows now."""

    budget_node_hours: float | None = None
    spent_node_hours: float = 0.0
    projected_node_hours: float | None = Field(None, description="what the remaining runs are expected to need "
                                                                 "(null: no duration known)")
    reason: str | None = Field(None, description="why no node may start for it now, or null")


class ConsolidatingModel(BaseModel):
    node: str
    since: float | None = None
    moves: list[dict] = Field(default_factory=list)


class ClusterModel(BaseModel):
    """One cluster: its setting, its scaling and consolidation, its nodes, its node-hours."""

    model_config = ConfigDict(extra="allow")

    name: str
    type: str | None = None
    num_slots: int | None = Field(None, description="slots of each node it starts (null: a cluster no longer in clusters.yaml)")
    paused_reason: str | None = Field(None, description="why nothing starts on it (the work dir refused a write, ...)")
    target_nodes: int | None = None
    scaling_policy: str | None = None
    consolidation: str | None = None
    consolidating: ConsolidatingModel | None = None
    surplus_reason: str | None = None
    budget: BudgetModel | None = Field(None, description="its node-hour cap (null: none)")
    nodes: list[NodeModel] = Field(default_factory=list)
    usage: UsageTotalsModel | None = Field(None, description="node-hours so far (null while the store cannot be read)")


class BatchTimingModel(BaseModel):
    """How long the controller's batches took lately."""

    p50_ms: float | None = None
    p95_ms: float | None = None
    count: int = 0


class StatusModel(BaseModel):
    """The overview `juqueue status` and the dashboard show (fields a server adds later pass through)."""

    model_config = ConfigDict(extra="allow")

    counts: dict[str, int] | None = Field(description="runs per status (null while the store cannot be read)")
    clusters: list[ClusterModel]
    definition_errors: list[str] = Field(description="each definition error as one line")
    definition_error_details: list[DefinitionErrorModel] = Field(
        default_factory=list, description="the same errors, each with its file and experiment")
    version: str
    flower_url: str | None = None
    store_error: str | None = Field(None, description="set while the store refuses the controller's commits")
    batch: BatchTimingModel | None = Field(None, description="the controller's batch durations lately")
    loading: bool = Field(False, description="true while the definitions are first read after `serve` started: "
                                             "new or changed runs may not be there yet")
