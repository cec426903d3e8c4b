"""One node and the node actions' shapes.

`NodeModel` is one node wherever the API shows one: `/api/nodes` (live and ended nodes) and
each cluster's `nodes` in `/api/status`. Fields keep the names and meanings scripts already
read; the controller's `NodeInfo.as_api` and the store's ended rows both fill it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from juqueue.status import NodeState

__all__ = ["NodeModel", "NodeActionRequest", "NodeActionResponse"]


class NodeModel(BaseModel):
    """One node: a SLURM job or a local worker process group running one Celery worker."""

    name: str
    cluster: str
    type: str | None = Field(None, description="its backend: local, slurm or a registered backend's type")
    state: NodeState
    live: bool = Field(True, description="false: ended (gone or failed), from the store")
    slots_total: int = Field(0, description="slots of the node (its cluster's num_slots when it started)")
    num_slots: int = Field(0, description="the same as slots_total (the cluster setting's name)")
    slots_used: int = 0
    slots: list[str | None] = Field(default_factory=list,
                                    description="per slot index, the global id of the run holding it, or null")
    runs: list[str] = Field(default_factory=list, description="global ids of the runs assigned to or running on it")
    job_id: str | None = Field(None, description="the SLURM job id (null for local nodes)")
    host: str | None = None
    reason: str | None = Field(None, description="why it is in its state (who drained or stopped it, why it ended)")
    drained_by_user: bool = Field(False, description="a user drained it: it takes no new run and goes once empty")
    started_at: float | None = None
    ended_at: float | None = None
    last_heartbeat: float | None = None
    time_limit_at: float | None = Field(None, description="when its wall time ends (unix time); null: no limit known")
    no_devices: bool = Field(False, description="a run needing CUDA devices found none here")
    surplus: bool = Field(False, description="above its cluster's target: placed on last, released or emptied when it may be")
    surplus_reason: str | None = Field(None, description="for a surplus node: why it is still here, or what happens to it")
    kept_reason: str | None = Field(None, description="for a live node that is not surplus: why it is kept")
    billed_from: float | None = None
    billed_until: float | None = None
    billed_estimated: bool = Field(False, description="billed_until is when JuQueue saw the job gone, not the scheduler's record")
    replaces: str | None = Field(None, description="the node whose wall-time warning this replacement was started for")
    protected_until: float | None = Field(None, description="a replacement is neither surplus nor idle before this")

    @model_validator(mode="after")
    def _num_slots(self) -> "NodeModel":
        """`num_slots` and `slots_total` are one number; either may be given."""
        if not self.num_slots:
            self.num_slots = self.slots_total
        elif not self.slots_total:
            self.slots_total = self.num_slots
        return self


class NodeActionRequest(BaseModel):
    """An optional word on why, recorded in the node's `reason`."""

    reason: str | None = Field(None, max_length=200, description="why (shown after 'drained by user' / 'stopped by user')")


class NodeActionResponse(BaseModel):
    action: Literal["drain", "stop"]
    changed: bool = Field(description="false: the node was drained (or stopping) already; nothing changed")
    detail: str = Field(description="what was done, or why nothing was")
    node: NodeModel = Field(description="the node after the action")
