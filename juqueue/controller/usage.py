"""The usage series: per cluster, nodes held (billing) and slots busy, sampled on each tick and
written only when either changed, so an idle day costs nothing and a busy one a few MB."""

from __future__ import annotations

from juqueue.accounting import changed_sample
from juqueue.controller.state import ControllerState
from juqueue.status import RunStatus


class UsageSampler:
    def __init__(self, state: ControllerState) -> None:
        self.s = state
        self.last: dict[str, tuple[int, int]] = {}

    def point(self) -> dict[str, tuple[int, int]]:
        """Per cluster, now: (nodes held, slots busy). Also the live feed's usage point."""
        s = self.s
        held: dict[str, int] = {name: 0 for name in s.config.clusters}
        busy: dict[str, int] = {name: 0 for name in s.config.clusters}
        for node in s.nodes.values():
            if node.billed_from is not None and node.billed_until is None and node.state.is_live:
                held[node.cluster] = held.get(node.cluster, 0) + 1
            busy[node.cluster] = busy.get(node.cluster, 0) + sum(
                1 for g in node.runs if g in s.runs and s.runs[g].status == RunStatus.RUNNING)
        return {cluster: (held[cluster], busy.get(cluster, 0)) for cluster in sorted(held)}

    def sample(self, now: float) -> None:
        for cluster, point in self.point().items():
            if changed_sample(self.last.get(cluster), *point):
                self.s.batch.usage_samples.append({"cluster": cluster, "ts": now, "nodes": point[0], "slots_busy": point[1]})
                self.last[cluster] = point
