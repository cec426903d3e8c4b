"""Consolidation as the controller carries it out, driven batch by batch on fakes (see
controller_fakes.py): which nodes are surplus, when runs are moved (SIGTERM, then the next
attempt on the slot reserved for it), when nodes are released, and what status says meanwhile.

The policy's own rules are tested in test_consolidation_policy.py; here the wiring is: the
re-check over two ticks, the two-phase move, exits racing a move, a restart mid-move, the
scaling policies' node starts, `consolidation: idle`, `movable: false` and releases.
Ticks are explicit (`tick`): moves are only made on ticks.
"""

from __future__ import annotations

from typing import Callable

import pytest

from controller_fakes import Harness, run_specs
from juqueue.definitions.models import ClusterSpec, RunSpec
from juqueue.status import NodeState, RunStatus, StopReason

QUEUED, ASSIGNED, RUNNING = RunStatus.QUEUED.value, RunStatus.ASSIGNED.value, RunStatus.RUNNING.value
COMPLETED, FAILED = RunStatus.COMPLETED.value, RunStatus.FAILED.value
MOVE = StopReason.MOVE.value


def cluster(name: str = "c", kind: str = "local", **kw: object) -> ClusterSpec:
    """The seed's settings: 4 slots, consolidate_after 10 s, grace_period 5 s. idle_timeout is
    long, so a node that goes early went by consolidation, not by the idle timeout."""
    settings: dict[str, object] = {"num_slots": 4, "max_jobs": 4, "consolidate_after": 10, "grace_period": 5,
                                   "idle_timeout": 600}
    settings.update(kw)
    return ClusterSpec(name=name, type=kind, **settings)  # type: ignore[arg-type]


# ==================================================================== driving
def stops(h: Harness) -> list[tuple[str, dict]]:
    """The stop commands sent for single runs (a move's SIGTERM, a cancel)."""
    return [(node, cmd) for node, cmd in h.publisher.controls if cmd["op"] == "stop"]


def shutdowns(h: Harness) -> list[str]:
    return [node for node, cmd in h.publisher.controls if cmd["op"] == "shutdown"]


def tick(h: Harness, cluster_name: str, seconds: float = 5.0) -> None:
    """`seconds` later: every live node of the cluster shows life, then a beat tick."""
    h.clock.advance(seconds)
    for node in h.nodes_of(cluster_name):
        h.heartbeat(node)
    h.tick()


class Workers:
    """The workers' side of moves: a run told to stop exits as interrupted (its SIGTERM), a
    node told to shut down is gone at the next liveness check, and every newly published
    attempt is started by its worker."""

    def __init__(self, h: Harness, backend: str = "local") -> None:
        self.h = h
        self.backend = h.backends[backend]
        self.seen_controls = 0
        self.started: set[tuple[str, int]] = {(a.global_id, a.attempt) for a in h.publisher.published}

    def obey(self) -> None:
        h = self.h
        while True:
            acted = False
            controls = h.publisher.controls[self.seen_controls:]
            self.seen_controls = len(h.publisher.controls)
            for node, cmd in controls:
                if cmd["op"] == "stop":
                    h.exited(cmd["global_id"], -15, interrupted=True, reason="stopped (SIGTERM)")
                    acted = True
                elif cmd["op"] == "shutdown":
                    self.backend.mark_gone(node, "worker shut down")
            for a in h.publisher.published:
                if (a.global_id, a.attempt) not in self.started:
                    self.started.add((a.global_id, a.attempt))
                    h.started(a.global_id)
                    acted = True
            if not acted:
                return
            h.step()


def seed(make, spec: ClusterSpec, runs: list[RunSpec] | None = None, nodes: int = 4,
         keep: Callable[[list[str]], str] = lambda gids: gids[-1]) -> tuple[Harness, dict[str, str]]:
    """The seed's example: `nodes` nodes of 4 slots, 4 runs started on each; 60 s later three
    runs per node exit 0 (each node's heartbeat after them, so the exits are final), leaving
    one long run per node (`keep` picks it). Returns the harness and node -> long run."""
    h = make([spec], runs if runs is not None else run_specs(4 * nodes, spec.name))
    h.step()
    names = h.nodes_of(spec.name)
    assert len(names) == nodes
    for node in names:
        h.heartbeat(node)
    h.step()
    placed = {node: [a.global_id for a in h.publisher.to_node(node)] for node in names}
    assert all(len(gids) == 4 for gids in placed.values())
    for gids in placed.values():
        for slot, gid in enumerate(gids):
            h.started(gid, slot=slot)
    h.step()
    h.clock.advance(60)
    long: dict[str, str] = {}
    for node, gids in placed.items():
        long[node] = keep(gids)
        for gid in gids:
            if gid != long[node]:
                h.exited(gid, 0)
        h.heartbeat(node)
    h.step()
    for node, gids in placed.items():
        assert [h.status(g) for g in gids if g != long[node]] == [COMPLETED] * 3
        assert h.status(long[node]) == RUNNING
    return h, long


def first_move(h: Harness, cluster_name: str = "c", max_ticks: int = 10) -> tuple[str, str, str]:
    """Tick until consolidation moves a run; returns (run, from node, to node)."""
    for _ in range(max_ticks):
        tick(h, cluster_name)
        consolidating = h.controller.clusters_snapshot()[cluster_name]["consolidating"]
        if consolidating is not None:
            (move,) = consolidating["moves"]
            return move["run"], consolidating["node"], move["to"]
    raise AssertionError(f"no move within {max_ticks} ticks: {h.controller.clusters_snapshot()[cluster_name]}")


def live_attempts(h: Harness, gid: str) -> list[int]:
    """The run's attempts not yet ended (never more than one: no run runs twice)."""
    return [a.number for a in h.store.attempts_of(gid) if a.ended_at is None]


# ==================================================================== 1. the seed's example
def test_seed_example_four_nodes_each_left_with_one_long_run_consolidate_to_one(make):
    h, long = seed(make, cluster())
    c, backend = h.controller, h.backends["local"]
    short_runs_end = h.clock.time()
    assert backend.start_calls == 4
    status = c.clusters_snapshot()["c"]
    assert (status["target_nodes"], status["consolidation"], status["consolidating"]) == (1, "aggressive", None)
    assert status["surplus_reason"].startswith("consolidate_after not reached")
    assert sum(n["surplus"] for n in c.nodes_snapshot()) == 3

    tick(h, "c")  # surplus for 5 s: too soon
    assert stops(h) == [] and c.clusters_snapshot()["c"]["surplus_reason"].startswith("consolidate_after not reached")
    tick(h, "c")  # 10 s: a move is planned, not made (the plan must hold until the next tick)
    assert stops(h) == [] and c.clusters_snapshot()["c"]["consolidating"] is None
    tick(h, "c")  # the re-check: the same plan, so it is carried out
    consolidating = c.clusters_snapshot()["c"]["consolidating"]
    assert consolidating is not None
    src = consolidating["node"]
    (move,) = consolidating["moves"]
    gid, dest = move["run"], move["to"]
    assert gid == long[src] and dest != src and dest in long
    assert consolidating["since"] == h.clock.time()
    ((to, cmd),) = stops(h)
    assert to == src and (cmd["global_id"], cmd["attempt"], cmd["grace"]) == (gid, 1, 5)
    assert c.nodes[src].state == NodeState.DRAINING
    att = h.store.attempts_of(gid)[0]
    assert att.stop_reason == MOVE and att.ended_at is None  # recorded before the worker was told
    assert "moved" in h.event_kinds(gid)
    assert c.s.reserved == {dest: 1}

    h.clock.advance(2)  # within the grace period the run ends
    h.exited(gid, -15, interrupted=True, reason="stopped (SIGTERM)")
    h.step()
    second = h.publisher.latest(gid)
    assert (second.attempt, second.node) == (2, dest)  # on its reserved slot
    row = h.run(gid)
    assert (row.status, row.attempt, row.retries_used) == (ASSIGNED, 2, 0)
    first = h.store.attempts_of(gid)[0]
    assert (first.end_reason, first.stop_reason) == ("interrupted", MOVE)
    assert shutdowns(h) == [src]  # the emptied node is stopped
    assert c.s.reserved == {} and c.s.moving == set()
    assert backend.start_calls == 4

    backend.mark_gone(src, "worker shut down")  # its worker obeyed the shutdown
    workers = Workers(h)  # from here on the workers obey every command
    workers.seen_controls = len(h.publisher.controls)
    workers.started.discard((gid, 2))  # published, not yet started
    workers.obey()
    seen_consolidating = [consolidating]
    while len(h.nodes_of("c")) > 1 and h.clock.time() < short_runs_end + 300:
        tick(h, "c")
        snap = c.clusters_snapshot()["c"]
        if snap["consolidating"] is not None and snap["consolidating"] not in seen_consolidating:
            seen_consolidating.append(snap["consolidating"])
        workers.obey()
        assert backend.start_calls == 4  # moves never start a node
    assert len(h.nodes_of("c")) == 1
    assert h.clock.time() - short_runs_end <= 90  # the bound on a real cluster

    (last,) = h.nodes_of("c")
    moved = [g for node, g in long.items() if node != last]
    assert len(seen_consolidating) == 3
    assert sorted(m["run"] for s in seen_consolidating for m in s["moves"]) == sorted(moved)
    assert {s["node"] for s in seen_consolidating} == set(long) - {last}
    assert sorted(cmd["global_id"] for _, cmd in stops(h)) == sorted(moved)  # none moves twice
    assert sorted(shutdowns(h)) == sorted(set(long) - {last})
    assert c.nodes[last].runs == set(long.values())
    for g in moved:
        row = h.run(g)
        assert (row.status, row.attempt, row.node, row.retries_used) == (RUNNING, 2, last, 0)
        assert [(a.number, a.stop_reason) for a in h.store.attempts_of(g)] == [(1, MOVE), (2, None)]
    assert h.run(long[last]).attempt == 1
    status = c.clusters_snapshot()["c"]
    assert (status["consolidating"], status["surplus_reason"]) == (None, None)

    h.clock.advance(30)
    for g in long.values():
        h.exited(g, 0)
    h.heartbeat(last)
    h.step()
    for g in long.values():
        row = h.run(g)
        assert (row.status, row.retries_used) == (COMPLETED, 0)
        assert FAILED not in h.event_kinds(g)
        assert h.event_kinds(g).count("moved") == (1 if g in moved else 0)
    assert backend.start_calls == 4


def test_a_plan_that_changed_by_the_next_tick_is_not_carried_out(make):
    h, long = seed(make, cluster(max_jobs=3), nodes=3)
    c = h.controller
    tick(h, "c")
    tick(h, "c")  # consolidate_after reached: a move is planned (seen once)
    proposal = c.consolidator.view("c").proposal
    assert proposal is not None and stops(h) == []
    planned = proposal[0]
    h.exited(long[planned], 0)  # the planned node's run ends by itself before the re-check
    h.heartbeat(planned)
    h.step()
    assert shutdowns(h) == [planned]  # empty and surplus: released at once
    h.backends["local"].mark_gone(planned)
    tick(h, "c")  # the plan differs from the one seen before: nothing is moved this tick
    assert stops(h) == [] and c.clusters_snapshot()["c"]["consolidating"] is None
    assert c.consolidator.view("c").proposal[0] not in (None, planned)
    tick(h, "c")  # the new plan held: now it is carried out
    ((node, cmd),) = stops(h)
    assert node != planned and cmd["global_id"] == long[node]



# ==================================================================== 2. an exit racing the move; destinations
def test_a_run_that_exits_0_just_before_its_moves_sigterm_completes_and_is_not_rerun(make):
    h, long = seed(make, cluster(max_jobs=2), nodes=2)
    gid, src, dest = first_move(h)
    assert h.controller.s.reserved == {dest: 1}
    published = len(h.publisher.published)

    h.exited(gid, 0)  # the run ended by itself: the worker did not see a SIGTERM
    h.step()
    assert h.status(gid) == RUNNING  # an exit 0 is final only after its node's next heartbeat
    h.heartbeat(src)
    h.step()
    row = h.run(gid)
    assert (row.status, row.exit_code, row.attempt, row.retries_used) == (COMPLETED, 0, 1, 0)
    (att,) = h.store.attempts_of(gid)
    assert (att.end_reason, att.stop_reason) == ("exited", MOVE)
    assert "requeued" not in h.event_kinds(gid)
    assert len(h.publisher.published) == published and h.publisher.latest(gid).attempt == 1  # not rerun
    s = h.controller.s
    assert s.reserved == {} and s.moving == set()  # its reservation released
    assert shutdowns(h) == [src]  # the emptied node is stopped all the same

    h.backends["local"].mark_gone(src)
    tick(h, "c")
    assert h.nodes_of("c") == [dest]
    assert h.controller.clusters_snapshot()["c"]["consolidating"] is None
    assert h.backends["local"].start_calls == 2


def test_a_move_whose_destination_dies_during_the_grace_period_queues_the_run_normally(make):
    h, long = seed(make, cluster(kind="slurm", name="s"), nodes=3)
    gid, src, dest = first_move(h, "s")
    backend = h.backends["slurm"]
    backend.mark_gone(dest, "job ended")
    tick(h, "s")
    assert dest not in h.nodes_of("s")
    h.exited(gid, -15, interrupted=True, reason="stopped (SIGTERM)")
    h.step()
    second = h.publisher.latest(gid)
    assert second.attempt == 2 and second.node not in (src, dest)  # placed like any other run
    row = h.run(gid)
    assert (row.status, row.retries_used) == (ASSIGNED, 0)
    s = h.controller.s
    assert s.reserved == {} and s.moving == set()  # the reservation is gone with its node
    assert backend.start_calls == 3


def test_the_destination_of_a_move_is_not_stopped_as_idle_while_its_slot_is_reserved(make):
    h, long = seed(make, cluster(max_jobs=2, idle_timeout=3), nodes=2)
    gid, src, dest = first_move(h)
    h.exited(long[dest], 0)  # the destination's own run ends during the move's grace period
    h.heartbeat(dest)
    h.step()
    tick(h, "c", 4)  # longer than idle_timeout
    assert shutdowns(h) == []  # its free slot is promised to the moving run
    h.exited(gid, -15, interrupted=True, reason="stopped (SIGTERM)")
    h.step()
    assert (h.publisher.latest(gid).attempt, h.publisher.latest(gid).node) == (2, dest)
    assert shutdowns(h) == [src]
    assert h.backends["local"].start_calls == 2


# ==================================================================== 3. a restart mid-move
@pytest.mark.parametrize("exit_before_restart", [False, True])
def test_a_controller_restarted_mid_move_loses_no_run_and_runs_none_twice(make, exit_before_restart):
    h, long = seed(make, cluster(kind="slurm", name="s"))
    backend = h.backends["slurm"]
    gid, src, dest = first_move(h, "s")
    moved_at = h.clock.time()
    if exit_before_restart:  # the worker's exit waits unread in the stream
        h.exited(gid, -15, interrupted=True, reason="stopped (SIGTERM)")
    h.restart()  # the memory (and the reserved slot) is lost; the store and the SLURM jobs stay
    c = h.controller
    assert c.s.reserved == {} and c.s.moving == set()
    assert c.clusters_snapshot()["s"]["consolidating"]["node"] == src  # still being emptied
    assert c.nodes[src].state == NodeState.DRAINING
    assert h.run(gid).status == RUNNING and live_attempts(h, gid) == [1]
    # Its cooldown counts from the move, not from the start of the attempt it interrupted.
    assert c.s.runs[gid].moved_at >= moved_at

    if not exit_before_restart:
        h.exited(gid, -15, interrupted=True, reason="stopped (SIGTERM)")
    h.step()
    row = h.run(gid)
    assert (row.status, row.attempt, row.retries_used) == (ASSIGNED, 2, 0)  # requeued and placed once
    assert [a.attempt for a in h.publisher.published if a.global_id == gid] == [1, 2]
    assert h.publisher.latest(gid).node != src and live_attempts(h, gid) == [2]
    assert shutdowns(h) == [src]

    workers = Workers(h, "slurm")
    workers.seen_controls = len(h.publisher.controls) - 1  # the shutdown of src is obeyed
    workers.obey()
    for _ in range(20):
        if len(h.nodes_of("s")) == 1:
            break
        tick(h, "s")
        workers.obey()
        for g in long.values():
            assert len(live_attempts(h, g)) <= 1
    assert len(h.nodes_of("s")) == 1  # the minimum all the same
    (last,) = h.nodes_of("s")
    assert backend.start_calls == 4
    assert c.nodes[last].runs == set(long.values())
    for g in long.values():
        attempts = [a.attempt for a in h.publisher.published if a.global_id == g]
        assert attempts == sorted(set(attempts)) and len(attempts) <= 2  # each attempt placed once
        assert len(live_attempts(h, g)) == 1 and h.run(g).retries_used == 0
    assert h.event_kinds(gid).count("moved") == 1  # not moved again after the restart
    # the restarted controller sends the move's stop once more (it may never have been sent)
    assert {cmd["attempt"] for _, cmd in stops(h) if cmd["global_id"] == gid} == {1}

    h.clock.advance(30)
    for g in long.values():
        h.exited(g, 0)
    h.heartbeat(last)
    h.step()
    assert all(h.status(g) == COMPLETED for g in long.values())


# ==================================================================== 4. the scaling policies
@pytest.mark.parametrize("policy, min_saturation, expected", [
    ("maximize_running", 0.5, {1: 1, 3: 1, 5: 2}),
    ("minimize_jobs", 0.5, {1: 1, 3: 1, 5: 1}),
    ("min_saturation", 0.5, {1: 1, 3: 1, 5: 1}),
    ("min_saturation", 0.1, {1: 1, 3: 1, 5: 2}),
])
@pytest.mark.parametrize("ready", [1, 3, 5])  # 1, num_slots - 1, num_slots + 1 ready runs
def test_each_scaling_policy_starts_the_nodes_it_says(make, policy, min_saturation, expected, ready):
    nodes = expected[ready]
    h = make([cluster(max_jobs=5, scaling_policy=policy, min_saturation=min_saturation)], run_specs(ready, "c"))
    backend = h.backends["local"]
    h.step()
    assert backend.start_calls == nodes
    status = h.controller.clusters_snapshot()["c"]
    assert (status["target_nodes"], status["scaling_policy"]) == (nodes, policy)
    for node in h.nodes_of("c"):
        h.heartbeat(node)
    h.step()
    assert len(h.publisher.published) == min(ready, 4 * nodes)
    tick(h, "c")
    assert backend.start_calls == nodes  # a run that found no slot waits: nothing more starts
    assert [h.status(f"exp@r{i}") for i in range(ready)].count(QUEUED) == max(0, ready - 4 * nodes)


# ==================================================================== 5. consolidation: idle
def test_idle_mode_never_stops_a_run_and_releases_an_empty_surplus_node_after_idle_timeout(make):
    h, long = seed(make, cluster(max_jobs=2, consolidation="idle", idle_timeout=30), nodes=2)
    c = h.controller
    for _ in range(24):  # 2 minutes of surplus, far past consolidate_after
        tick(h, "c")
        status = c.clusters_snapshot()["c"]
        assert (status["consolidation"], status["consolidating"], status["target_nodes"]) == ("idle", None, 1)
    assert stops(h) == [] and shutdowns(h) == []
    assert all(a.stop_reason is None for g in long.values() for a in h.store.attempts_of(g))

    first, second = sorted(long)
    h.exited(long[first], 0)
    h.heartbeat(first)
    h.step()
    assert h.status(long[first]) == COMPLETED
    assert shutdowns(h) == []  # empty and surplus, but idle mode waits for idle_timeout
    for _ in range(5):
        tick(h, "c")
        assert shutdowns(h) == []
    tick(h, "c")  # 30 s empty
    assert shutdowns(h) == [first]
    assert h.publisher.controls == [(first, {"op": "shutdown", "reason": "idle"})]
    assert stops(h) == [] and h.status(long[second]) == RUNNING


# ==================================================================== 6. movable: false, and other refusals
def test_movable_false_runs_are_never_moved_and_status_says_why_the_surplus_lasts(make):
    # r0 and r4 (on the first and second node) may not move; the other long runs may.
    runs = [RunSpec(experiment="exp", id=f"r{i}", cluster="c", cmd=["true"], movable=i not in (0, 4)) for i in range(16)]
    h, long = seed(make, cluster(), runs, keep=lambda gids: next((g for g in gids if g in ("exp@r0", "exp@r4")), gids[-1]))
    c = h.controller
    pinned = {node: g for node, g in long.items() if g in ("exp@r0", "exp@r4")}
    assert len(pinned) == 2
    workers = Workers(h)
    reasons = []
    for _ in range(30):
        tick(h, "c")
        workers.obey()
        reasons.append(c.clusters_snapshot()["c"]["surplus_reason"])
        if len(h.nodes_of("c")) == 2 and reasons[-1] is not None and reasons[-1].startswith("movable: false"):
            break
    moved = sorted(cmd["global_id"] for _, cmd in stops(h))
    assert moved == sorted(g for g in long.values() if g not in pinned.values())  # the two movable ones
    assert sorted(h.nodes_of("c")) == sorted(pinned)  # both nodes with a pinned run stay
    reason = c.clusters_snapshot()["c"]["surplus_reason"]
    assert reason.startswith("movable: false: ") and ("exp@r0" in reason or "exp@r4" in reason)
    surplus = [n["name"] for n in c.nodes_snapshot() if n["surplus"]]
    assert len(surplus) == 1 and pinned[surplus[0]] in reason

    for _ in range(12):  # the surplus lasts: still no move of a pinned run, still explained
        tick(h, "c")
        workers.obey()
        assert c.clusters_snapshot()["c"]["surplus_reason"] == reason
    assert sorted(cmd["global_id"] for _, cmd in stops(h)) == moved
    for g in pinned.values():
        assert [a.stop_reason for a in h.store.attempts_of(g)] == [None] and h.run(g).attempt == 1

    (node,) = surplus
    h.exited(pinned[node], 0)  # its run ends: the node is empty and goes at once
    h.heartbeat(node)
    h.step()
    assert shutdowns(h)[-1] == node
    status = c.clusters_snapshot()["c"]
    assert (status["surplus_reason"], status["consolidating"]) == (None, None)
    assert h.backends["local"].start_calls == 4


def test_a_surplus_whose_runs_end_soon_waits_for_them(make):
    # duration 85 s: from consolidate_after on, the 5-15 s they have left are not worth a move.
    h, long = seed(make, cluster(max_jobs=2), run_specs(8, "c", duration=85), nodes=2)
    for _ in range(4):
        tick(h, "c")
    status = h.controller.clusters_snapshot()["c"]
    assert status["surplus_reason"].startswith("waiting for runs to end")
    assert stops(h) == []


# ==================================================================== 7. releases
def test_an_empty_surplus_node_is_released_at_once_in_aggressive_mode(make):
    h = make([cluster(max_jobs=2)], run_specs(8, "c"))
    h.step()
    first, second = h.nodes_of("c")
    h.heartbeat(first)
    h.heartbeat(second)
    h.step()
    for node in (first, second):
        for slot, a in enumerate(h.publisher.to_node(node)):
            h.started(a.global_id, slot=slot)
    h.step()
    h.clock.advance(1)  # long before idle_timeout (600 s) and consolidate_after (10 s)
    for a in h.publisher.to_node(first):
        h.exited(a.global_id, 0)
    h.heartbeat(first)
    h.step()  # no tick needed: releases follow every batch
    assert h.publisher.controls == [(first, {"op": "shutdown", "reason": "surplus (consolidation)"})]
    assert h.controller.nodes[first].state == NodeState.STOPPING
    assert h.controller.clusters_snapshot()["c"]["target_nodes"] == 1
    assert h.backends["local"].stopped == []  # the worker is asked to shut down, not killed


def test_a_surplus_slurm_job_that_never_started_is_cancelled(make):
    h = make([cluster(name="s", kind="slurm", num_slots=2, max_jobs=2)], run_specs(3, "s"))
    backend = h.backends["slurm"]
    h.step()
    up, pending = backend.started
    h.heartbeat(up)  # the second job still waits in SLURM's queue: no heartbeat yet
    h.step()
    assert [a.global_id for a in h.publisher.to_node(up)] == ["exp@r0", "exp@r1"]
    h.started("exp@r0", slot=0)
    h.started("exp@r1", slot=1)
    h.step()
    h.clock.advance(1)
    h.exited("exp@r0", 0)
    h.heartbeat(up)
    h.step()  # exp@r2 takes the freed slot: demand 2, one node is enough
    assert h.publisher.latest("exp@r2").node == up
    assert h.controller.clusters_snapshot()["s"]["target_nodes"] == 1
    assert [s[0] for s in backend.stopped] == [pending]  # scancel: it bills nothing yet
    assert h.node(pending).state == NodeState.GONE.value
    assert shutdowns(h) == [] and h.nodes_of("s") == [up]
    assert backend.start_calls == 2
