"""Experiments (`GET /api/experiments`): runs per status, node-hours, budget, definition errors."""

from __future__ import annotations

from pydantic import BaseModel, Field

from juqueue.api.models.status import DefinitionErrorModel


class ExperimentModel(BaseModel):
    """One experiment: how far it is, what it cost, what it will cost, what is wrong with it."""

    name: str
    source_file: str | None = Field(None, description="the definition file it came from (null: not known)")
    defined: bool = Field(True, description="false: no file defines it any more")
    counts: dict[str, int] = Field(description="runs per status (every status, 0 included)")
    total: int = Field(description="its runs")
    node_hours: float = Field(0.0, description="node-hours charged to it")
    busy_slot_hours: float = Field(0.0, description="slot-hours its runs were running")
    efficiency: float | None = Field(None, description="busy slot-hours / billed slot-hours (null: nothing billed)")
    lost_hours: float = Field(0.0, description="slot-hours of its interrupted attempts")
    budget_node_hours: float | None = Field(None, description="its node-hour cap (null: none)")
    spent_node_hours: float = Field(0.0, description="node-hours spent (what the cap counts)")
    projected_node_hours: float | None = Field(None, description="node-hours its remaining runs are expected to need "
                                                                 "(null: no duration known)")
    budget_reason: str | None = Field(None, description="why its runs may not start a node now (its cap), or null")
    errors: list[DefinitionErrorModel] = Field(default_factory=list, description="its file's definition errors")
