"""A user's drain and stop of one node, driven batch by batch on fakes (controller_fakes.py).

Drain: the node takes no new run, is released once its last run is over, and nothing
(consolidation, idle release, heartbeats, a restart) turns it back to accepting. Stop: its
runs are interrupted with `node_stop` and queued again without spending a retry, then run
elsewhere. Plus the per-node words on why a node is surplus or kept.
"""

from __future__ import annotations

from controller_fakes import Harness, run_specs
from juqueue.controller.node_actions import NodeOutcome
from juqueue.definitions.models import ClusterSpec
from juqueue.status import NodeState, RunStatus, StopReason

QUEUED, ASSIGNED, RUNNING = RunStatus.QUEUED.value, RunStatus.ASSIGNED.value, RunStatus.RUNNING.value
COMPLETED = RunStatus.COMPLETED.value


def cluster(kind: str = "local", **kw: object) -> ClusterSpec:
    settings: dict[str, object] = {"num_slots": 2, "max_jobs": 2, "consolidate_after": 10, "grace_period": 5,
                                   "idle_timeout": 600}
    settings.update(kw)
    return ClusterSpec(name="c", type=kind, **settings)  # type: ignore[arg-type]


def two_busy_nodes(make, n_runs: int = 6, kind: str = "local", **runs_kw: object) -> tuple[Harness, dict[str, list[str]]]:
    """Two nodes of 2 slots up, each running two runs; the rest queued. Returns node -> its runs."""
    h = make([cluster(kind)], run_specs(n_runs, "c", **runs_kw))
    h.step()
    nodes = h.nodes_of("c")
    assert len(nodes) == 2
    for node in nodes:
        h.heartbeat(node)
    h.step()
    placed = {node: [a.global_id for a in h.publisher.to_node(node)] for node in nodes}
    for gids in placed.values():
        assert len(gids) == 2
        for slot, gid in enumerate(gids):
            h.started(gid, slot=slot)
    h.step()
    return h, placed


def finish(h: Harness, node: str, gids: list[str]) -> None:
    """The runs exit 0 on `node`; its next heartbeat makes the exits final."""
    h.clock.advance(5)
    for gid in gids:
        h.exited(gid, 0)
    h.heartbeat(node)
    h.step()


def shutdowns(h: Harness) -> list[tuple[str, str]]:
    return [(node, cmd.get("reason", "")) for node, cmd in h.publisher.controls if cmd["op"] == "shutdown"]


def live(h: Harness, name: str):  # type: ignore[no-untyped-def]
    return h.controller.nodes[name]


# ==================================================================== drain
def test_drained_node_takes_no_new_run_and_is_released_once_empty(make):
    h, placed = two_busy_nodes(make)
    a, b = sorted(placed)
    result = h.command(lambda: h.controller.drain_node(a, "bad disk"))
    assert result.outcome == NodeOutcome.DONE
    assert h.node(a).state == NodeState.DRAINING.value
    assert h.node(a).reason == "draining: drained by user (bad disk)"
    sent_to_a = len(h.publisher.to_node(a))

    finish(h, a, placed[a][:1])  # a slot frees on the drained node: nothing goes there
    assert len(h.publisher.to_node(a)) == sent_to_a
    assert live(h, a).state == NodeState.DRAINING and shutdowns(h) == []
    queued = [g for g in (f"exp@r{i}" for i in range(6)) if h.status(g) == QUEUED]
    assert len(queued) == 2

    finish(h, b, placed[b])  # the other node's slots take the queued runs
    assert {h.run(g).node for g in queued} == {b}
    assert len(h.publisher.to_node(a)) == sent_to_a

    finish(h, a, placed[a][1:])  # its last run is over: released at once
    assert shutdowns(h) == [(a, "drained by user, now empty")]
    assert h.node(a).state == NodeState.STOPPING.value
    assert h.status(placed[a][1]) == COMPLETED


def test_drain_is_idempotent_and_says_so(make):
    h, placed = two_busy_nodes(make)
    a = sorted(placed)[0]
    first = h.command(lambda: h.controller.drain_node(a))
    again = h.command(lambda: h.controller.drain_node(a, "twice"))
    assert first.outcome == NodeOutcome.DONE and again.outcome == NodeOutcome.ALREADY
    assert h.node(a).reason == "draining: drained by user"
    assert "already drained" in again.detail


def test_consolidation_idle_release_and_heartbeats_do_not_undo_a_drain(make):
    """Demand falls to one node's worth: consolidation wants a node gone, yet the drained node is
    never made accepting again, gets no run (no move lands there), and goes only once empty."""
    h, placed = two_busy_nodes(make, n_runs=4, duration=10_000)
    a, b = sorted(placed)
    h.command(lambda: h.controller.drain_node(b))
    sent_to_b = len(h.publisher.to_node(b))
    finish(h, a, placed[a])  # node a is empty now; b (drained) keeps its two runs
    for _ in range(6):
        h.clock.advance(20)
        for node in h.nodes_of("c"):
            h.heartbeat(node)
        h.tick()
        assert live(h, b).state == NodeState.DRAINING, "a user drain was undone"
        assert len(h.publisher.to_node(b)) == sent_to_b
        assert all(cmd["op"] != "stop" for node, cmd in h.publisher.controls if node == b), "runs moved off a drained node"
    assert (b, "drained by user, now empty") not in shutdowns(h)
    finish(h, b, placed[b])
    assert (b, "drained by user, now empty") in shutdowns(h)


def test_a_drain_outlives_a_restart(make):
    h, placed = two_busy_nodes(make, kind="slurm")  # SLURM nodes outlive `serve`
    a = sorted(placed)[0]
    h.command(lambda: h.controller.drain_node(a))
    h.restart()
    node = live(h, a)
    assert node.state == NodeState.DRAINING and node.drained_by_user
    h.heartbeat(a, running=[f"{g}|1" for g in placed[a]])
    h.tick()
    assert live(h, a).state == NodeState.DRAINING
    finish(h, a, placed[a])
    assert (a, "drained by user, now empty") in shutdowns(h)


def test_draining_a_stopping_node_is_refused_and_unknown_nodes_are_not_live(make):
    h, placed = two_busy_nodes(make)
    a = sorted(placed)[0]
    assert h.command(lambda: h.controller.stop_node(a)).outcome == NodeOutcome.DONE
    refused = h.command(lambda: h.controller.drain_node(a))
    assert refused.outcome == NodeOutcome.REFUSED and "stopping" in refused.detail
    assert h.command(lambda: h.controller.stop_node(a)).outcome == NodeOutcome.ALREADY
    assert h.command(lambda: h.controller.drain_node("nope")).outcome == NodeOutcome.NOT_LIVE
    assert h.command(lambda: h.controller.stop_node("nope")).outcome == NodeOutcome.NOT_LIVE


def test_draining_a_job_still_queued_at_the_scheduler_cancels_it(make):
    h = make([cluster("slurm")], run_specs(1, "c"))
    h.step()
    (node,) = h.nodes_of("c")
    assert h.node(node).state == NodeState.STARTING.value
    result = h.command(lambda: h.controller.drain_node(node))
    assert result.outcome == NodeOutcome.DONE
    assert [s[0] for s in h.backends["slurm"].stopped] == [node]
    row = h.node(node)
    assert row.state == NodeState.GONE.value and "drained by user" in (row.reason or "")


# ==================================================================== stop
def test_stopped_node_requeues_its_runs_without_spending_retries(make):
    h, placed = two_busy_nodes(make, n_runs=4, max_retries=1)
    a, b = sorted(placed)
    result = h.command(lambda: h.controller.stop_node(a, "maintenance"))
    assert result.outcome == NodeOutcome.DONE
    assert shutdowns(h) == [(a, "stopped by user (maintenance)")]
    assert h.node(a).reason == "stopping: stopped by user (maintenance)"
    for gid in placed[a]:  # the stop is recorded before the worker hears of it
        (att,) = h.store.attempts_of(gid)
        assert att.stop_reason == StopReason.NODE_STOP.value

    h.clock.advance(2)  # the worker stops its runs (SIGTERM) and exits; the job ends
    for gid in placed[a]:
        h.exited(gid, -15, interrupted=True, reason="stopped (SIGTERM)")
    h.step()
    h.backends["local"].mark_gone(a, "worker shut down")
    h.tick()
    for gid in placed[a]:
        row = h.run(gid)
        assert row.status == QUEUED and row.retries_used == 0 and row.attempt == 1
    assert h.node(a).state == NodeState.GONE.value

    finish(h, b, placed[b])  # slots free elsewhere (or a new node): the stopped node's runs run again
    for node in h.nodes_of("c"):
        h.heartbeat(node)
    h.step()
    for gid in placed[a]:
        row = h.run(gid)
        assert row.status == ASSIGNED and row.attempt == 2 and row.node != a
        h.started(gid, slot=placed[a].index(gid))
    h.step()
    for gid in placed[a]:
        finish(h, h.run(gid).node, [gid])
        row = h.run(gid)
        assert (row.status, row.retries_used) == (COMPLETED, 0)


# ==================================================================== why surplus or kept
def test_every_live_node_says_why_it_is_surplus_or_kept(make):
    h, placed = two_busy_nodes(make, n_runs=4, duration=10_000)
    a, b = sorted(placed)
    snapshot = {n["name"]: n for n in h.controller.nodes_snapshot()}
    assert all(not n["surplus"] and n["kept_reason"].startswith("within the target") for n in snapshot.values())
    assert all(n["num_slots"] == n["slots_total"] == 2 for n in snapshot.values())
    finish(h, a, placed[a][:1])  # demand 3 slots on 2-slot nodes: still 2 nodes
    finish(h, b, placed[b][:1])  # demand 2 slots: one node is surplus, its run may not move yet
    h.tick()
    snapshot = {n["name"]: n for n in h.controller.nodes_snapshot()}
    surplus = [n for n in snapshot.values() if n["surplus"]]
    kept = [n for n in snapshot.values() if not n["surplus"]]
    assert len(surplus) == 1 and len(kept) == 1
    assert surplus[0]["surplus_reason"] and surplus[0]["kept_reason"] is None
    assert kept[0]["kept_reason"].startswith("within the target") and kept[0]["surplus_reason"] is None
    h.command(lambda: h.controller.drain_node(kept[0]["name"]))
    snapshot = {n["name"]: n for n in h.controller.nodes_snapshot()}
    assert snapshot[kept[0]["name"]]["kept_reason"].startswith("draining")
    assert snapshot[kept[0]["name"]]["drained_by_user"] is True
