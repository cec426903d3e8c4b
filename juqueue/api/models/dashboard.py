"""What the dashboard asks for beyond the lists: the header's facts, a reload's preview, one run's definition."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class AboutModel(BaseModel):
    """What every page's header shows, without the work `/api/status` does."""

    version: str
    flower_url: str | None = Field(None, description="Flower's address when `serve` started it (null: off)")


class ReloadPreviewModel(BaseModel):
    """What `POST /api/reload` would do now; nothing is applied."""

    added: list[str] = Field(default_factory=list, description="runs a reload would add")
    updated: list[str] = Field(default_factory=list, description="runs whose definition changed")
    undefined: list[str] = Field(default_factory=list, description="runs no file defines any more")
    would_stop: list[str] = Field(default_factory=list, description="live runs a reload would stop (and rerun "
                                                                    "with their new definition, or not at all)")
    errors: list[str] = Field(default_factory=list, description="definition errors the files have now")
    aborted: bool = Field(False, description="true: the evaluation failed as a whole; a reload would change no run")


class RunDefinitionModel(BaseModel):
    """One run as its file defines it (the store's copy of the last applied definition)."""

    global_id: str
    cmd: list[str] = Field(default_factory=list, description="the command as run, its parameters rendered in")
    spec: dict[str, Any] = Field(default_factory=dict, description="the whole definition: cluster, executor, slots, "
                                                                   "depends_on, max_retries, duration, source_file, ...")
