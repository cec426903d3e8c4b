"""Dispatch: ready runs onto free slots (the placement policy decides where), each placement
committed as a new attempt before its message is published."""

from __future__ import annotations

from juqueue.controller.publisher import Assignment, Publisher
from juqueue.controller.state import ControllerState
from juqueue.policy.placement import NodeView, place_runs
from juqueue.status import NodeState, RunStatus

NO_DEVICES_REASON = "waiting for a node with CUDA devices: the live nodes of its cluster have none"


class Dispatch:
    def __init__(self, state: ControllerState, publisher: Publisher) -> None:
        self.s = state
        self.publisher = publisher

    def place(self, now: float) -> None:
        s = self.s
        s.dirty_placement = False
        for health in s.health.values():
            health.resume_if_due(now)
        free: dict[str, int] = {}
        for n in s.nodes.values():
            if n.state == NodeState.UP:
                free[n.cluster] = free.get(n.cluster, 0) + max(0, n.slots_total - len(n.runs))
        ready = {c: s.queue.head(c, s.queue.ready_count(c) if s.has_device_less_node(c) else free.get(c, 0))
                 for c in s.queue.clusters() if c not in s.health or not s.health[c].placement_blocked}
        # Runs that need CUDA devices never go to a node that showed it has none.
        needs_devices = {c: [g for g in gids if s.runs[g].needs_cuda] for c, gids in ready.items()}
        others = {c: [g for g in gids if not s.runs[g].needs_cuda] for c, gids in ready.items()}
        min_left = max((spec.grace_period + 60 for spec in s.config.clusters.values()), default=0)
        surplus = frozenset(s.surplus)
        placed = self._place_reserved()
        moved = {g for g, _ in placed}
        for lists in (needs_devices, others):
            for c in lists:
                lists[c] = [g for g in lists[c] if g not in moved and g not in s.moving]
        used: dict[str, int] = {}
        for _gid, node_name in placed:
            used[node_name] = used.get(node_name, 0) + 1
        found = place_runs(needs_devices, self._views(now, with_devices_only=True, used=used), min_time_left_s=min_left,
                           surplus=surplus)
        for _gid, node_name in found:
            used[node_name] = used.get(node_name, 0) + 1
        placed += found
        placed += place_runs(others, self._views(now, used=used), min_time_left_s=min_left, surplus=surplus)
        self._note_device_waits(needs_devices, {g for g, _ in placed})
        to_publish: list[Assignment] = []
        for gid, node_name in placed:
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

    def _place_reserved(self) -> list[tuple[str, str]]:
        """Moved runs go to the slot reserved for them; a reservation on a node that no longer
        takes runs is dropped and the run is placed like any other."""
        s = self.s
        out = []
        for gid in list(s.moving):
            run = s.runs.get(gid)
            if run is None or run.move_to is None:
                s.moving.discard(gid)
                continue
            if run.status != RunStatus.QUEUED or gid not in s.queue:
                continue  # its attempt is not over yet
            dest = s.nodes.get(run.move_to)
            s.release_reservation(run)
            if dest is not None and dest.state == NodeState.UP and len(dest.runs) < dest.slots_total:
                out.append((gid, dest.name))
        return out

    def _views(self, now: float, with_devices_only: bool = False, used: dict[str, int] | None = None) -> list[NodeView]:
        used = used or {}
        return [
            NodeView(n.name, n.cluster, n.slots_total, len(n.runs) + used.get(n.name, 0) + self.s.reserved.get(n.name, 0),
                     accepting=n.state == NodeState.UP,
                     time_left_s=(n.time_limit_at - now) if n.time_limit_at else None)
            for n in self.s.nodes.values() if not (with_devices_only and n.no_devices)
        ]

    def _note_device_waits(self, needs_devices: dict[str, list[str]], placed: set[str]) -> None:
        """Say why a run that needs devices waits when every live node lacks them."""
        s = self.s
        for cluster, gids in needs_devices.items():
            if not s.all_nodes_device_less(cluster):
                continue
            for gid in gids:
                if gid not in placed:
                    run = s.runs[gid]
                    if run.reason != NO_DEVICES_REASON:
                        run.reason = NO_DEVICES_REASON
                        s.mark_run_dirty(run)
