"""Dispatch: ready runs onto free slots (policy.slot_placement decides which slot indices of
which node), each placement committed as a new attempt (with its slots) before its message
is published; the message carries the slot indices and the worker uses exactly those."""

from __future__ import annotations

import json
from dataclasses import replace

from juqueue.controller.publisher import Assignment, Publisher
from juqueue.controller.state import ControllerState
from juqueue.policy.slot_placement import Hold, RunDemand, pick_slots, plan_slots
from juqueue.status import NodeState, RunStatus

PLACEMENT_LOOKAHEAD = 256  # queued runs looked at beyond the free slots (k-slot runs that fit nowhere are skipped)
NO_DEVICES_REASON = "waiting for a node with CUDA devices: the live nodes of its cluster have none"
HOLD_REASON = "waiting for free slots of one node"


class Dispatch:
    def __init__(self, state: ControllerState, publisher: Publisher) -> None:
        self.s = state
        self.publisher = publisher

    def place(self, now: float) -> None:
        s = self.s
        s.dirty_placement = False
        for health in s.health.values():
            health.resume_if_due(now)
        placed = self._place_reserved()  # (gid, node, slot indices)
        taken: dict[str, set[int]] = {}
        for _gid, node_name, slots in placed:
            taken.setdefault(node_name, set()).update(slots)
        free: dict[str, int] = {}
        for n in s.nodes.values():
            if n.state == NodeState.UP:
                free[n.cluster] = free.get(n.cluster, 0) + max(0, n.slots_total - n.slots_used)
        # Enough of the queue's head for best fit and giving way (k-slot runs may be skipped);
        # when every ready run needs one slot, the free slots' worth of it (plus runs on the move).
        ready = {c: s.queue.head(c, s.queue.ready_count(c) if s.has_device_less_node(c)
                                 else (free.get(c, 0) + self._lookahead(c) if free.get(c, 0) else 0))
                 for c in s.queue.clusters() if c not in s.health or not s.health[c].placement_blocked}
        moved = {g for g, _, _ in placed}
        for c in ready:
            ready[c] = [g for g in ready[c] if g not in moved and g not in s.moving]
        needs_devices = {c: [g for g in gids if s.runs[g].needs_cuda] for c, gids in ready.items()}
        demands = {c: [RunDemand(g, s.runs[g].slots, s.runs[g].needs_cuda) for g in gids] for c, gids in ready.items() if gids}
        min_left = max((spec.grace_period + 60 for spec in s.config.clusters.values()), default=0)
        nodes = [replace(n, used=n.used | frozenset(taken.get(n.name, ()))) for n in s.slot_nodes(now)]
        plan = plan_slots(demands, nodes, min_time_left_s=min_left, reserved=s.reserved)
        placed += [(p.run, p.node, p.slots) for p in plan.placements]
        self._note_device_waits(needs_devices, {g for g, _, _ in placed})
        self._note_holds(plan.holds, ready)
        to_publish: list[Assignment] = []
        # `now` is when the batch began, before its commands ran (a reload queues runs after it):
        # the attempt records when it was handed out, so queued -> published is never negative.
        stamp = s.now()
        specs = s.store.spec_jsons(g for g, _, _ in placed)  # memory keeps only what decisions read
        for gid, node_name, slots in placed:
            run, node = s.runs[gid], s.nodes[node_name]
            s.queue.remove(gid)
            run.attempt += 1
            run.checkpoint_at = None
            run.status, run.node, run.reason = RunStatus.ASSIGNED, node_name, None
            run.unlisted_deadline = stamp + s.message_grace(node)
            node.take(gid, slots)
            node.idle_since = None
            s.mark_run_dirty(run)
            s.batch.new_attempts.append({"global_id": gid, "number": run.attempt, "node": node_name, "published_at": stamp,
                                         "slot": slots[0], "slots": json.dumps(list(slots))})
            s.batch.event(gid, "assigned", run.attempt, node_name, f"slots {','.join(map(str, slots))}", stamp)
            to_publish.append(Assignment(gid, run.experiment, run.run_id, run.attempt, node_name, specs.get(gid, "{}"), tuple(slots)))
        if to_publish:
            s.commit()  # the store knows the attempt before any worker can see it
            self.publisher.publish(to_publish)

    def _lookahead(self, cluster: str) -> int:
        q = self.s.queue
        return PLACEMENT_LOOKAHEAD if q.ready_slots(cluster) > q.ready_count(cluster) else len(self.s.moving)

    def _place_reserved(self) -> list[tuple[str, str, tuple[int, ...]]]:
        """Moved runs go to the slots reserved for them; a reservation on a node that no longer
        takes runs (or lacks the free indices) is dropped and the run is placed like any other."""
        s = self.s
        out: list[tuple[str, str, tuple[int, ...]]] = []
        taken: dict[str, set[int]] = {}
        for gid in list(s.moving):
            run = s.runs.get(gid)
            if run is None or run.move_to is None:
                s.moving.discard(gid)
                continue
            if run.status != RunStatus.QUEUED or gid not in s.queue:
                continue  # its attempt is not over yet
            dest = s.nodes.get(run.move_to)
            s.release_reservation(run)
            if dest is None or dest.state != NodeState.UP:
                continue
            used = dest.used_slots() | taken.get(dest.name, set())
            slots = pick_slots([i for i in range(dest.slots_total) if i not in used], run.slots)
            if slots is not None:
                taken.setdefault(dest.name, set()).update(slots)
                out.append((gid, dest.name, slots))
        return out

    def _note_holds(self, holds: tuple[Hold, ...], looked_at: dict[str, list[str]]) -> None:
        """Say why a k-slot run waits while a node's free slots are kept for it (no smaller run
        takes them); a run no longer held loses that reason."""
        s = self.s
        held = {h.run: h for h in holds}
        for cluster, gids in looked_at.items():
            for gid in gids:
                run = s.runs.get(gid)
                if run is None or run.status != RunStatus.QUEUED:
                    continue
                hold = held.get(gid)
                if hold is not None:
                    reason = f"{HOLD_REASON}: {hold.node} takes no smaller run until {run.slots} of its slots are free"
                elif (run.reason or "").startswith(HOLD_REASON):
                    reason = None
                else:
                    continue
                if run.reason != reason:
                    run.reason = reason
                    s.mark_run_dirty(run)

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
