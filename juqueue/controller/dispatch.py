"""Dispatch: ready runs onto free slots (the placement policy decides where), each placement
committed as a new attempt before its message is published."""

from __future__ import annotations

from juqueue.controller.publisher import Assignment, Publisher
from juqueue.controller.state import ControllerState
from juqueue.policy.placement import NodeView, place_runs
from juqueue.status import NodeState, RunStatus


class Dispatch:
    def __init__(self, state: ControllerState, publisher: Publisher) -> None:
        self.s = state
        self.publisher = publisher

    def place(self, now: float) -> None:
        s = self.s
        s.dirty_placement = False
        free: dict[str, int] = {}
        for n in s.nodes.values():
            if n.state == NodeState.UP:
                free[n.cluster] = free.get(n.cluster, 0) + max(0, n.slots_total - len(n.runs))
        ready = {c: s.queue.head(c, free.get(c, 0)) for c in s.queue.clusters()}
        views = [
            NodeView(n.name, n.cluster, n.slots_total, len(n.runs), accepting=n.state == NodeState.UP,
                     time_left_s=(n.time_limit_at - now) if n.time_limit_at else None)
            for n in s.nodes.values()
        ]
        min_left = max((spec.grace_period + 60 for spec in s.config.clusters.values()), default=0)
        to_publish: list[Assignment] = []
        for gid, node_name in place_runs(ready, views, min_time_left_s=min_left):
            run, node = s.runs[gid], s.nodes[node_name]
            s.queue.remove(gid)
            run.attempt += 1
            run.status, run.node, run.reason = RunStatus.ASSIGNED, node_name, None
            node.runs.add(gid)
            node.idle_since = None
            s.mark_run_dirty(run)
            s.batch.new_attempts.append({"global_id": gid, "number": run.attempt, "node": node_name, "published_at": now})
            s.batch.event(gid, "assigned", run.attempt, node_name, None, now)
            to_publish.append(Assignment(gid, run.experiment, run.run_id, run.attempt, node_name, run.spec_json))
        if to_publish:
            s.commit()  # the store knows the attempt before any worker can see it
            self.publisher.publish(to_publish)
