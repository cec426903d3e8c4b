"""Health, reload and stop answers."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class HealthModel(BaseModel):
    status: str = Field(description="always ok")
    version: str


class ReloadModel(BaseModel):
    """What a reload applied (or, without confirmation, would stop)."""

    model_config = ConfigDict(extra="allow")

    added: list[str] = Field(default_factory=list)
    updated: list[str] = Field(default_factory=list)
    undefined: list[str] = Field(default_factory=list)
    stopped: list[str] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)
    clusters: dict[str, list[str]] | None = Field(None, description="clusters.yaml: added, changed, removed")
    needs_confirmation: bool | None = Field(None, description="true: more than 10 live runs would stop; nothing applied")
    would_stop: list[str] | None = None


class StopAnswerModel(BaseModel):
    model_config = ConfigDict(extra="allow")

    stopping: bool = True
    cancel_jobs: bool = False
