"""The controller's decisions, driven batch by batch on fakes (see controller_fakes.py): a fake
backend, event stream, leases, publisher and clock around a real store on SQLite.

No Redis, no Celery, no subprocess: each test plays the workers' events onto the fake stream,
runs `iterate` and looks at the store's rows and at what the fakes were asked to do.
"""

from __future__ import annotations

import json

import sqlite3

import pytest
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from controller_fakes import TICK_INTERVAL_S, Harness, run_specs
from juqueue.definitions.models import ClusterSpec
from juqueue.events import EXITED, Event
from juqueue.status import NodeState, RunStatus, StopReason

QUEUED, ASSIGNED, RUNNING = RunStatus.QUEUED.value, RunStatus.ASSIGNED.value, RunStatus.RUNNING.value
COMPLETED, FAILED, CANCELLED = RunStatus.COMPLETED.value, RunStatus.FAILED.value, RunStatus.CANCELLED.value


def local(name="c", **kw) -> ClusterSpec:
    return ClusterSpec(name=name, type="local", **kw)


def slurm(name="s", **kw) -> ClusterSpec:
    return ClusterSpec(name=name, type="slurm", **kw)


def running_on_one_node(make, cluster: ClusterSpec, n_runs: int, **kw) -> tuple[Harness, str]:
    """`n_runs` runs of the one cluster, all started on one node."""
    h = make([cluster], run_specs(n_runs, cluster.name, **kw))
    h.step()
    (node,) = h.nodes_of(cluster.name)
    h.heartbeat(node)
    h.step()
    for i in range(n_runs):
        h.started(f"exp@r{i}", slot=i)
    h.step()
    assert all(h.status(f"exp@r{i}") == RUNNING for i in range(n_runs))
    return h, node


# ==================================================================== 1. placement and scale-out
@pytest.mark.parametrize("max_jobs, expected_nodes", [(5, 3), (2, 2)])
def test_queued_runs_start_nodes_and_are_published_after_the_first_heartbeat(make, max_jobs, expected_nodes):
    h = make([local(num_slots=2, max_jobs=max_jobs)], run_specs(5, "c"))
    backend = h.backends["local"]

    h.step()
    assert len(backend.started) == expected_nodes  # ceil(5 runs / 2 slots) = 3, bounded by max_jobs
    assert h.nodes_of("c") == sorted(backend.started)
    assert all(h.node(n).state == NodeState.STARTING.value for n in backend.started)
    assert h.publisher.published == []  # nothing goes to a node before it is heard from
    assert all(h.status(f"exp@r{i}") == QUEUED for i in range(5))

    h.tick()  # demand is covered by the starting nodes' slots (or max_jobs): nothing more starts
    assert backend.start_calls == expected_nodes

    first = backend.started[0]
    h.heartbeat(first)
    h.step()
    assert h.node(first).state == NodeState.UP.value
    sent = h.publisher.to_node(first)
    assert [(a.global_id, a.attempt) for a in sent] == [("exp@r0", 1), ("exp@r1", 1)]
    for gid in ("exp@r0", "exp@r1"):
        row = h.run(gid)
        assert (row.status, row.node, row.attempt) == (ASSIGNED, first, 1)
        (att,) = h.store.attempts_of(gid)
        assert (att.number, att.node, att.started_at) == (1, first, None)
    assert [h.status(f"exp@r{i}") for i in range(2, 5)] == [QUEUED] * 3
    assert backend.start_calls == expected_nodes

    for i, gid in enumerate(("exp@r0", "exp@r1")):
        h.started(gid, slot=i)
    h.step()
    for gid in ("exp@r0", "exp@r1"):
        row = h.run(gid)
        assert row.status == RUNNING and row.started_at == h.clock.time()
        assert h.store.attempts_of(gid)[0].pid is not None
        assert h.event_kinds(gid) == ["defined", "assigned", "running"]


def test_the_fallback_tick_comes_after_three_tick_intervals_on_the_clock(make):
    h = make([local()], [])
    h.tick()  # a beat tick
    assert h.generation.advances == 1
    h.clock.advance(3 * TICK_INTERVAL_S - 1)
    h.step()
    assert h.generation.advances == 1
    h.clock.advance(2)
    h.step()  # no beat for 3 tick intervals: the controller ticks on its own clock
    assert h.generation.advances == 2
    h.step()
    assert h.generation.advances == 2


def test_a_rejected_assignment_is_placed_again_as_the_next_attempt(make):
    h = make([local(num_slots=1)], run_specs(1, "c"))
    h.step()
    (node,) = h.nodes_of("c")
    h.heartbeat(node)
    h.step()
    h.rejected("exp@r0", "no free slot")
    h.step()
    row = h.run("exp@r0")
    assert (row.status, row.attempt, row.retries_used) == (ASSIGNED, 2, 0)
    first, second = h.store.attempts_of("exp@r0")
    assert first.end_reason == "interrupted" and "rejected by" in first.interrupted_by
    assert second.ended_at is None
    assert [a.attempt for a in h.publisher.published] == [1, 2]


# ==================================================================== 2. a node lost with runs on it
def test_silent_scheduler_node_is_cancelled_then_its_runs_requeue_once_the_job_is_gone(make):
    h, node = running_on_one_node(make, slurm(num_slots=2, max_jobs=1, heartbeat_timeout=30), 2)
    backend = h.backends["slurm"]
    job_id = h.node(node).job_id
    assert job_id is not None

    h.clock.advance(20)
    h.tick()  # not silent long enough
    assert backend.stopped == [] and h.node(node).state == NodeState.UP.value

    h.clock.advance(11)  # 31 s since the last heartbeat
    h.tick()
    assert backend.stopped == [(node, job_id, None)]
    assert h.node(node).state == NodeState.STOPPING.value
    # the scheduler has not confirmed the loss: the runs may still be running there
    assert [h.status(g) for g in ("exp@r0", "exp@r1")] == [RUNNING, RUNNING]
    assert h.leases.fenced == [] and backend.killed == []
    h.tick()
    assert [h.status(g) for g in ("exp@r0", "exp@r1")] == [RUNNING, RUNNING]

    backend.mark_gone(node, "job 7001 CANCELLED")
    h.tick()
    assert h.node(node).state == NodeState.GONE.value
    assert node not in h.controller.nodes
    assert sorted(h.leases.fenced) == ["exp@r0", "exp@r1"]
    assert sorted(h.leases.released) == [("exp@r0", 1, node), ("exp@r1", 1, node)]
    assert node in h.publisher.deleted_queues
    for gid in ("exp@r0", "exp@r1"):
        row = h.run(gid)
        assert (row.status, row.attempt, row.retries_used) == (QUEUED, 1, 0)
        assert row.reason.startswith("interrupted: node lost")
        (att,) = h.store.attempts_of(gid)
        assert att.end_reason == "interrupted" and att.exit_code == -1
        assert FAILED not in h.event_kinds(gid) and "requeued" in h.event_kinds(gid)

    # a replacement is started at once and the runs continue there as attempt 2
    assert len(backend.started) == 2
    replacement = backend.started[1]
    h.heartbeat(replacement)
    h.step()
    for gid in ("exp@r0", "exp@r1"):
        row = h.run(gid)
        assert (row.status, row.attempt, row.node, row.retries_used) == (ASSIGNED, 2, replacement, 0)
        assert [a.number for a in h.store.attempts_of(gid)] == [1, 2]
    assert {(a.global_id, a.attempt) for a in h.publisher.to_node(replacement)} == {("exp@r0", 2), ("exp@r1", 2)}


def test_silent_local_node_is_gone_at_once_and_its_run_groups_are_killed(make):
    h, node = running_on_one_node(make, local(num_slots=2, max_jobs=1, heartbeat_timeout=30), 2)
    backend = h.backends["local"]
    worker_pid = h.node(node).pid
    groups = sorted((a.pid, a.pgid_start) for g in ("exp@r0", "exp@r1") for a in h.store.attempts_of(g))

    h.clock.advance(31)
    h.tick()
    assert backend.stopped == [(node, None, worker_pid)]
    assert sorted(backend.killed) == groups
    assert h.node(node).state == NodeState.GONE.value
    for gid in ("exp@r0", "exp@r1"):
        row = h.run(gid)
        assert (row.status, row.attempt, row.retries_used) == (QUEUED, 1, 0)
        assert h.store.attempts_of(gid)[0].end_reason == "interrupted"
        assert FAILED not in h.event_kinds(gid)
    assert len(backend.started) == 2  # the replacement


def test_a_late_exit_of_a_lost_attempt_does_not_touch_the_next_one(make):
    h, node = running_on_one_node(make, local(num_slots=1, max_jobs=1), 1)
    lost = h.publisher.latest("exp@r0")
    h.clock.advance(31)
    h.tick()
    (replacement,) = h.nodes_of("c")
    h.heartbeat(replacement)
    h.step()
    assert h.run("exp@r0").attempt == 2
    h.exited("exp@r0", 0, attempt=lost)  # the old worker's exit, delivered late
    h.heartbeat(replacement)
    h.step()
    row = h.run("exp@r0")
    assert (row.status, row.attempt) == (ASSIGNED, 2)
    assert COMPLETED not in h.event_kinds("exp@r0")


# ==================================================================== 3. exits racing stops, cancels
def test_exit_0_on_a_healthy_node_is_final_only_after_the_nodes_next_heartbeat(make):
    h, node = running_on_one_node(make, local(num_slots=1), 1)
    h.exited("exp@r0", 0)
    h.step()
    assert h.status("exp@r0") == RUNNING  # might be SIGTERM of a job ending: wait for the node
    assert h.store.attempts_of("exp@r0")[0].ended_at is None
    h.heartbeat(node)
    h.step()
    row = h.run("exp@r0")
    assert (row.status, row.exit_code, row.retries_used) == (COMPLETED, 0, 0)
    assert h.store.attempts_of("exp@r0")[0].end_reason == "exited"
    assert h.event_kinds("exp@r0").count(COMPLETED) == 1


def test_what_the_worker_says_of_a_failed_exit_is_in_the_runs_reason(make):
    h = make([local(num_slots=1, max_jobs=1)], run_specs(1, "c"))
    h.step()
    (node,) = h.nodes_of("c")
    h.heartbeat(node)
    h.step()
    h.started("exp@r0")
    h.step()
    a = h.publisher.latest("exp@r0")
    h.push(Event(type=EXITED, node=node, ts=h.clock.time(), global_id="exp@r0", attempt=a.attempt, exit_code=127,
                 reason="cannot activate the venv '~/v': ~/v/bin/activate does not exist"))
    h.heartbeat(node, running=[])
    h.step()
    row = h.run("exp@r0")
    assert (row.status, row.exit_code) == (FAILED, 127)
    assert row.reason == "exit code 127: cannot activate the venv '~/v': ~/v/bin/activate does not exist"


def test_on_a_scheduler_an_exit_0_waits_for_a_heartbeat_taken_after_the_settle_time(make):
    """scancel signals the run and the worker at once: a heartbeat sent right after the run's
    exit 0 (before the worker learnt it is stopping) does not make it a completion."""
    h, node = running_on_one_node(make, slurm(num_slots=1, max_jobs=1), 1)
    h.backends["slurm"].exit_settle_s = 2.0
    h.exited("exp@r0", 0)
    h.heartbeat(node)  # the same instant: too soon to tell
    h.step()
    assert h.status("exp@r0") == RUNNING
    h.clock.advance(0.5)
    h.heartbeat(node, stopping=True)  # the worker learnt of the TERM: an interruption
    h.step()
    row = h.run("exp@r0")
    assert row.status != COMPLETED and row.attempt in (1, 2)
    (att, *_) = h.store.attempts_of("exp@r0")
    assert att.end_reason == "interrupted"
    # and with a healthy node, a heartbeat taken after the settle time completes it
    h2, node2 = running_on_one_node(make, slurm(name="t", num_slots=1, max_jobs=1), 1)
    h2.backends["slurm"].exit_settle_s = 2.0
    h2.exited("exp@r0", 0)
    h2.clock.advance(2.5)
    h2.heartbeat(node2)
    h2.step()
    assert h2.status("exp@r0") == COMPLETED


def test_exit_0_followed_by_a_stopping_heartbeat_is_an_interruption(make):
    h, node = running_on_one_node(make, slurm(num_slots=1), 1)
    h.exited("exp@r0", 0)
    h.heartbeat(node, stopping=True)  # the job got SIGTERM: the exit was a kill in disguise
    h.step()
    row = h.run("exp@r0")
    assert (row.status, row.attempt, row.retries_used) == (QUEUED, 1, 0)
    assert h.store.attempts_of("exp@r0")[0].end_reason == "interrupted"


def test_exit_0_while_the_worker_says_it_is_stopping_requeues(make):
    h, node = running_on_one_node(make, slurm(num_slots=1), 1)
    h.heartbeat(node, stopping=True)
    h.step()
    assert h.node(node).state == NodeState.STOPPING.value
    h.exited("exp@r0", 0)
    h.step()
    row = h.run("exp@r0")
    assert (row.status, row.retries_used) == (QUEUED, 0)
    assert row.reason == "interrupted: node going away"
    assert h.store.attempts_of("exp@r0")[0].end_reason == "interrupted"


def test_exit_0_after_a_recorded_node_stop_requeues(make):
    h, node = running_on_one_node(make, slurm(num_slots=1), 1)
    c = h.controller
    c.fleet.request_node_stop(c.nodes[node], StopReason.NODE_STOP, "moved", h.clock.time())
    assert h.publisher.controls == [(node, {"op": "shutdown", "reason": "moved"})]
    att = h.store.attempts_of("exp@r0")[0]
    assert att.stop_reason == StopReason.NODE_STOP.value  # committed before the worker was told
    h.exited("exp@r0", 0)  # the run's exit 0 (the worker did not mark it interrupted)
    h.step()
    row = h.run("exp@r0")
    assert (row.status, row.retries_used) == (QUEUED, 0)
    assert COMPLETED not in h.event_kinds("exp@r0")
    att = h.store.attempts_of("exp@r0")[0]
    assert (att.end_reason, att.stop_reason) == ("interrupted", StopReason.NODE_STOP.value)


def test_user_cancel_of_a_running_run_stops_it_and_its_exit_cancels_it(make):
    h, node = running_on_one_node(make, local(num_slots=1), 1)
    assert h.command(lambda: h.controller.cancel_runs(["exp@r0"])) == ["exp@r0"]
    assert h.leases.fence_unclaimed_calls == [("exp@r0", 1)]  # claimed: the worker must stop it
    ((to, cmd),) = h.publisher.controls
    assert to == node and (cmd["op"], cmd["global_id"], cmd["attempt"]) == ("stop", "exp@r0", 1)
    assert h.status("exp@r0") == RUNNING
    assert h.store.attempts_of("exp@r0")[0].stop_reason == StopReason.CANCEL.value

    h.exited("exp@r0", -15, interrupted=True, reason="stopped")
    h.step()
    row = h.run("exp@r0")
    assert (row.status, row.reason, row.retries_used) == (CANCELLED, "cancelled by the user", 0)
    assert h.store.attempts_of("exp@r0")[0].end_reason == "cancelled"
    assert "requeued" not in h.event_kinds("exp@r0") and h.event_kinds("exp@r0").count(CANCELLED) == 1
    assert h.publisher.published == [h.publisher.latest("exp@r0")]  # not placed again


def test_cancel_of_an_unclaimed_assignment_ends_it_at_once(make):
    h = make([local(num_slots=1)], run_specs(1, "c"))
    h.step()
    (node,) = h.nodes_of("c")
    h.heartbeat(node)
    h.step()
    assert h.command(lambda: h.controller.cancel_runs(["exp@r0"])) == ["exp@r0"]
    assert h.status("exp@r0") == CANCELLED
    assert h.leases.current["exp@r0"] == "fenced"
    assert [c for c in h.publisher.controls if c[1].get("op") == "stop"] == []  # nothing to stop: it never started


@pytest.mark.parametrize("cancel_first", [False, True])
def test_cancel_wins_over_a_node_stop(make, cancel_first):
    h, node = running_on_one_node(make, slurm(num_slots=1), 1)
    c = h.controller

    def node_stop():
        c.fleet.request_node_stop(c.nodes[node], StopReason.NODE_STOP, "idle", h.clock.time())

    if not cancel_first:
        node_stop()
    h.command(lambda: c.cancel_runs(["exp@r0"]))
    if cancel_first:
        h.command(node_stop)
    assert h.store.attempts_of("exp@r0")[0].stop_reason == StopReason.CANCEL.value
    h.exited("exp@r0", 0)
    h.step()
    assert h.status("exp@r0") == CANCELLED
    assert "requeued" not in h.event_kinds("exp@r0")


def test_a_cancelled_run_whose_node_is_lost_stays_cancelled(make):
    h, node = running_on_one_node(make, slurm(num_slots=1, max_jobs=1), 1)
    h.command(lambda: h.controller.cancel_runs(["exp@r0"]))
    h.backends["slurm"].mark_gone(node)  # the job ends before the worker reports the exit
    h.tick()
    row = h.run("exp@r0")
    assert (row.status, row.reason) == (CANCELLED, "cancelled by the user")
    assert h.store.attempts_of("exp@r0")[0].end_reason == "cancelled"
    assert "requeued" not in h.event_kinds("exp@r0")


# ==================================================================== restart (recovery at start)
def test_restart_ends_local_nodes_and_requeues_their_runs(make):
    h, node = running_on_one_node(make, local(num_slots=2, max_jobs=1), 2)
    backend = h.backends["local"]
    groups = sorted((a.pid, a.pgid_start) for g in ("exp@r0", "exp@r1") for a in h.store.attempts_of(g))
    h.restart()
    assert backend.stopped == [(node, None, h.node(node).pid)]
    assert sorted(backend.killed) == groups
    assert h.node(node).state == NodeState.GONE.value
    for gid in ("exp@r0", "exp@r1"):
        row = h.run(gid)
        assert (row.status, row.attempt, row.retries_used) == (QUEUED, 1, 0)
        assert row.reason == "interrupted: node lost: server restarted"
    h.step()
    assert len(backend.started) == 2  # a new node for them


def test_restart_keeps_scheduler_nodes_with_their_runs_and_recorded_stops(make):
    h, node = running_on_one_node(make, slurm(num_slots=2, max_jobs=1), 2)
    h.command(lambda: h.controller.cancel_runs(["exp@r1"]))
    h.restart()
    assert h.backends["slurm"].stopped == [] and h.node(node).state == NodeState.UP.value
    assert h.leases.set_current_calls[-1] == {"exp@r0": 1, "exp@r1": 1}
    h.exited("exp@r0", 0)
    h.exited("exp@r1", 0)  # its stop was recorded before the restart: the cancel still holds
    h.heartbeat(node)
    h.step()
    assert (h.status("exp@r0"), h.status("exp@r1")) == (COMPLETED, CANCELLED)
    assert h.backends["slurm"].start_calls == 1


# ==================================================================== 4. failed starts pause a cluster
def test_failed_starts_pause_the_cluster_until_its_back_off_ends(make):
    h = make([slurm(num_slots=1, max_jobs=1)], run_specs(1, "s"), max_start_failures=3)
    backend = h.backends["slurm"]
    backend.fail_starts(3, "sbatch: error: invalid account")

    h.step()
    h.tick()
    assert backend.start_calls == 2 and h.controller.cluster_health() == {"s": None}
    h.tick()
    assert backend.start_calls == 3
    reason = h.controller.cluster_health()["s"]
    assert reason == "3 node starts failed; last: sbatch: error: invalid account"
    paused_until = h.controller.s.health["s"].paused_until
    assert paused_until == h.clock.time() + 30
    failed = [n for n in h.store.all_nodes()]
    assert len(failed) == 3 and {n.state for n in failed} == {NodeState.FAILED.value}
    assert all(n.reason == "sbatch: error: invalid account" for n in failed)
    assert h.status("exp@r0") == QUEUED  # the run waits, it does not fail

    for _ in range(3):
        h.clock.advance(9)
        h.tick()
    assert h.clock.time() < paused_until
    assert backend.start_calls == 3 and h.controller.cluster_health()["s"] == reason

    h.clock.set(paused_until)
    h.tick()
    assert backend.start_calls == 4 and h.controller.cluster_health() == {"s": None}
    (node,) = h.nodes_of("s")
    assert h.node(node).state == NodeState.STARTING.value
    h.heartbeat(node)
    h.step()
    assert h.controller.s.health["s"].start_failures == 0
    assert h.status("exp@r0") == ASSIGNED


def test_a_failed_start_after_the_back_off_pauses_again_for_longer(make):
    h = make([slurm(num_slots=1, max_jobs=1)], run_specs(1, "s"), max_start_failures=3)
    backend = h.backends["slurm"]
    backend.fail_starts(4)
    h.step()
    h.tick()
    h.tick()
    h.clock.advance(30)
    h.tick()
    assert backend.start_calls == 4
    assert h.controller.cluster_health()["s"].startswith("4 node starts failed")
    assert h.controller.s.health["s"].paused_until == h.clock.time() + 60


# ==================================================================== 5. Redis lost its state
def test_redis_reset_requeues_unclaimed_assignments_and_keeps_running_runs(make):
    h = make([local(num_slots=2, max_jobs=1)], run_specs(2, "c"))
    h.step()
    (node,) = h.nodes_of("c")
    h.heartbeat(node)
    h.step()
    h.started("exp@r0")  # exp@r1 stays ASSIGNED: its message died with Redis
    h.step()
    assert (h.status("exp@r0"), h.status("exp@r1")) == (RUNNING, ASSIGNED)
    resets_before = len(h.generation.reset_calls)

    h.generation.simulate_reset()
    h.tick()
    # Which died with Redis, exp@r1's message or its `started` event, only its node can tell: it
    # keeps its attempt (and its fencing key, so a running copy keeps its lease) until then.
    assert h.leases.fenced == [] and h.run("exp@r1").attempt == 1
    assert h.leases.set_current_calls[-1] == {"exp@r0": 1, "exp@r1": 1}
    assert len(h.generation.reset_calls) == resets_before + 1
    h.clock.advance(1)
    h.heartbeat(node, running=["exp@r0|1"])  # taken after the reset, without exp@r1: never claimed
    h.step()
    assert h.leases.fence_unclaimed_calls[-1] == ("exp@r1", 1)
    first, second = h.store.attempts_of("exp@r1")
    assert (first.end_reason, first.interrupted_by) == ("interrupted", "its message was lost before it started")
    row = h.run("exp@r1")
    assert (row.status, row.attempt, row.retries_used) == (ASSIGNED, 2, 0)  # placed again at once
    assert h.publisher.latest("exp@r1").attempt == 2
    assert FAILED not in h.event_kinds("exp@r1")
    running = h.run("exp@r0")
    assert (running.status, running.attempt) == (RUNNING, 1)
    (att,) = h.store.attempts_of("exp@r0")
    assert att.ended_at is None and att.end_reason is None

    h.tick()  # Redis holds the new generation: nothing more happens
    assert h.run("exp@r1").attempt == 2


def test_redis_reset_keeps_an_assigned_attempt_its_node_says_it_runs(make):
    """The `started` event died with Redis, the run did not: no second attempt while it lives."""
    h = make([local(num_slots=2, max_jobs=1)], run_specs(1, "c"))
    h.step()
    (node,) = h.nodes_of("c")
    h.heartbeat(node)
    h.step()
    h.generation.simulate_reset()
    h.tick()
    h.clock.advance(1)
    h.heartbeat(node, running=["exp@r0|1"])  # it runs there
    h.step()
    assert h.run("exp@r0").attempt == 1 and h.publisher.latest("exp@r0").attempt == 1
    assert h.leases.fence_unclaimed_calls == []
    h.exited("exp@r0", 0)
    h.heartbeat(node, running=[])
    h.step()
    assert h.status("exp@r0") == COMPLETED and h.run("exp@r0").attempt == 1


def test_an_assigned_attempt_its_node_never_lists_is_requeued_after_the_message_grace(make):
    """No reset: the worker dropped the message it had fetched when its broker connection broke."""
    h = make([local(num_slots=2, max_jobs=1, heartbeat_interval=1)], run_specs(2, "c"))
    h.step()
    (node,) = h.nodes_of("c")
    h.heartbeat(node)
    h.step()
    h.started("exp@r0")  # exp@r1's message is gone: its node never lists it
    h.step()
    h.clock.advance(59)
    h.heartbeat(node)
    h.step()
    assert h.leases.fence_unclaimed_calls == [] and h.run("exp@r1").attempt == 1  # within the grace
    h.clock.advance(2)
    h.heartbeat(node)
    h.step()
    assert h.leases.fence_unclaimed_calls == [("exp@r1", 1)]
    first, _ = h.store.attempts_of("exp@r1")
    assert first.interrupted_by == "its message was lost before it started"
    assert (h.status("exp@r1"), h.run("exp@r1").attempt, h.run("exp@r1").retries_used) == (ASSIGNED, 2, 0)
    assert h.run("exp@r0").attempt == 1


def test_an_attempt_whose_started_and_exit_events_both_died_with_redis_is_settled_from_its_exit_file(make):
    """It ran and ended between the reset and its node's next heartbeat: its exit file, not a
    lost message. Requeuing it would run a completed run again."""
    h = make([local(num_slots=2, max_jobs=1)], run_specs(1, "c"))
    h.step()
    (node,) = h.nodes_of("c")
    h.heartbeat(node)
    h.step()
    h.generation.simulate_reset()
    h.tick()
    started, ended = h.clock.time() + 0.2, h.clock.time() + 0.7
    exit_file = h.controller.config.work.exit_file("exp", "r0", 1)
    exit_file.parent.mkdir(parents=True, exist_ok=True)
    exit_file.write_text(json.dumps({"exit_code": 0, "ended_at": ended, "node": node, "attempt": 1,
                                     "interrupted": False, "started_at": started}))
    h.clock.advance(1)
    h.heartbeat(node, running=[])  # taken after the reset: the attempt is over
    h.step()
    assert h.leases.fence_unclaimed_calls == []
    row = h.run("exp@r0")
    assert (row.status, row.attempt, row.exit_code) == (COMPLETED, 1, 0)
    (att,) = h.store.attempts_of("exp@r0")
    assert (att.started_at, att.ended_at, att.end_reason) == (started, ended, "exited")
    assert h.publisher.latest("exp@r0").attempt == 1


def test_an_assigned_attempt_its_node_lists_is_never_taken_for_lost(make):
    """Listed (its claim waits out a broker outage, or its `started` event was lost): it keeps
    its attempt however long; once the node stops listing it, the grace counts from then."""
    h = make([local(num_slots=1, max_jobs=1, heartbeat_interval=1)], run_specs(1, "c"))
    h.step()
    (node,) = h.nodes_of("c")
    h.heartbeat(node)
    h.step()
    for _ in range(5):
        h.clock.advance(30)
        h.heartbeat(node, running=["exp@r0|1"])
        h.step()
    assert h.leases.fence_unclaimed_calls == [] and h.run("exp@r0").attempt == 1
    h.leases.claimed.add(("exp@r0", 1))  # claimed, then its worker lost it: fenced only when unclaimed
    h.clock.advance(1)
    h.heartbeat(node, running=[])
    h.step()
    assert h.leases.fence_unclaimed_calls == [("exp@r0", 1)] and h.run("exp@r0").attempt == 1
    h.leases.claimed.clear()  # its lease expired
    h.clock.advance(1)
    h.heartbeat(node, running=[])
    h.step()
    assert h.run("exp@r0").attempt == 2


def test_after_a_restart_an_assigned_attempt_gets_a_fresh_grace(make):
    h = make([slurm(num_slots=2, max_jobs=1, heartbeat_interval=1)], run_specs(1, "s"))
    h.step()
    (node,) = h.nodes_of("s")
    h.heartbeat(node)
    h.step()
    h.restart(after_s=120)  # the grace from the publish is over, but the new controller counts anew
    h.heartbeat(node, running=[])
    h.step()
    assert h.leases.fence_unclaimed_calls == [] and h.run("exp@r0").attempt == 1
    h.clock.advance(61)
    h.heartbeat(node, running=[])
    h.step()
    assert h.run("exp@r0").attempt == 2 and h.publisher.latest("exp@r0").attempt == 2


# ==================================================================== 6. a failed commit loses no event
def fail_next_commit(h: Harness, monkeypatch) -> list[int]:
    """The store refuses its next commit (as SQLite does when its disk is gone), then works."""
    real = h.store.commit
    failures = [1]

    def commit(batch):
        if failures[0]:
            failures[0] -= 1
            raise OperationalError("UPDATE runs", {}, sqlite3.OperationalError("disk I/O error"))
        return real(batch)

    monkeypatch.setattr(h.store, "commit", commit)
    return failures


def recover_like_the_loop(h: Harness) -> bool:
    """What Controller._loop does after a SQLAlchemyError: _wait_for_store rebuilds memory from
    the store, then the next batch reads what was delivered and not acknowledged."""
    h.controller._rebuild()
    return h.step(pending=True)


def test_a_failed_commit_leaves_events_unacknowledged_and_they_are_applied_after_recovery(make, monkeypatch):
    h = make([local(num_slots=3, max_jobs=1)], run_specs(3, "c"))
    h.step()
    (node,) = h.nodes_of("c")
    h.heartbeat(node)
    h.step()
    h.started("exp@r0", slot=0)
    h.started("exp@r1", slot=1)
    h.step()
    assert [h.status(f"exp@r{i}") for i in range(3)] == [RUNNING, RUNNING, ASSIGNED]
    ids = [h.started("exp@r2", slot=2), h.exited("exp@r0", 0), h.exited("exp@r1", 3), h.heartbeat(node)]
    failures = fail_next_commit(h, monkeypatch)

    with pytest.raises(SQLAlchemyError):
        h.step()
    assert failures == [0]
    assert h.stream.unacked() == ids  # delivered, not acknowledged
    assert [h.status(f"exp@r{i}") for i in range(3)] == [RUNNING, RUNNING, ASSIGNED]  # nothing half-written

    assert recover_like_the_loop(h) is False
    assert h.stream.entries == [] and h.stream.acked[-4:] == ids
    r0, r1, r2 = (h.run(f"exp@r{i}") for i in range(3))
    assert (r0.status, r0.exit_code) == (COMPLETED, 0)
    assert (r1.status, r1.exit_code) == (FAILED, 3)
    assert (r2.status, r2.attempt) == (RUNNING, 1)

    def ends() -> list[int]:
        return [h.event_kinds("exp@r0").count(COMPLETED), h.event_kinds("exp@r1").count(FAILED),
                h.event_kinds("exp@r2").count(RUNNING)]

    assert ends() == [1, 1, 1]
    for gid in ("exp@r0", "exp@r1"):
        (att,) = h.store.attempts_of(gid)
        assert att.end_reason == "exited"
    assert len(h.store.attempts_of("exp@r2")) == 1

    h.heartbeat(node)  # later batches change nothing more
    h.step()
    assert ends() == [1, 1, 1] and h.publisher.published[3:] == []


def test_a_failed_commit_of_a_placement_publishes_nothing_and_places_once_after_recovery(make, monkeypatch):
    h = make([local(num_slots=2, max_jobs=1)], run_specs(2, "c"))
    h.step()
    (node,) = h.nodes_of("c")
    hb = h.heartbeat(node)
    fail_next_commit(h, monkeypatch)

    with pytest.raises(SQLAlchemyError):
        h.step()  # node up -> placement -> its commit (before publishing) fails
    assert h.publisher.published == [] and h.stream.unacked() == [hb]
    assert h.store.attempts_of("exp@r0") == []

    recover_like_the_loop(h)
    assert h.stream.entries == []
    assert sorted((a.global_id, a.attempt, a.node) for a in h.publisher.published) == [
        ("exp@r0", 1, node), ("exp@r1", 1, node)]
    for gid in ("exp@r0", "exp@r1"):
        assert [a.number for a in h.store.attempts_of(gid)] == [1]
        assert h.run(gid).status == ASSIGNED
