"""Node-hours (`GET /api/usage`, each cluster's `usage` in the status, each experiment's)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class UsageTotalsModel(BaseModel):
    """What a cluster or an experiment billed and how busy it was (`accounting.Totals`)."""

    node_hours: float = Field(description="billed node-hours")
    busy_slot_hours: float = Field(description="slot-hours runs were running")
    efficiency: float | None = Field(None, description="busy slot-hours / (node-hours × slots); null: nothing billed")
    lost_hours: float = Field(description="slot-hours of interrupted attempts")
    nodes: int = Field(description="nodes billed")
    estimated: bool = Field(description="some billed end is JuQueue's observation, not the scheduler's record")


class SeriesPointModel(BaseModel):
    ts: float
    nodes: int
    slots_busy: int


class UsageModel(BaseModel):
    clusters: dict[str, UsageTotalsModel]
    experiments: dict[str, UsageTotalsModel]
    unattributed_node_hours: dict[str, float] = Field(description="per cluster, node-hours of nodes that ran nothing")
    series: dict[str, list[SeriesPointModel]] = Field(description="per cluster, changes only")
