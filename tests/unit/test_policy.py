"""Pure policy: scaling, outcomes, dependency readiness, the run queue (placement: test_slot_placement)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from juqueue.controller.run_queue import RunQueue
from juqueue.policy.outcome import attempt_outcome, dependency_readiness
from juqueue.policy.scaling import ClusterLoad, idle_nodes_to_stop, nodes_to_start
from juqueue.status import RunStatus


def test_scaling_counts_pending_capacity_and_respects_max_jobs():
    assert nodes_to_start(ClusterLoad(ready_queued=10, num_slots=4, max_jobs=5, free_slots_accepting=0, live_nodes=0)) == 3
    assert nodes_to_start(ClusterLoad(ready_queued=10, num_slots=4, max_jobs=2, free_slots_accepting=0, live_nodes=0)) == 2
    # a pending job's slots count: no duplicate submission
    assert nodes_to_start(ClusterLoad(ready_queued=3, num_slots=4, max_jobs=5, free_slots_accepting=4, live_nodes=1)) == 0
    assert nodes_to_start(ClusterLoad(ready_queued=0, num_slots=4, max_jobs=5, free_slots_accepting=0, live_nodes=0)) == 0
    assert nodes_to_start(ClusterLoad(ready_queued=9, num_slots=4, max_jobs=5, free_slots_accepting=0, live_nodes=0), paused=True) == 0


@given(st.integers(0, 500), st.integers(1, 16), st.integers(0, 20), st.integers(0, 20), st.integers(0, 200))
def test_scaling_never_exceeds_max_jobs(ready, slots, max_jobs, live, free):
    live = min(live, max_jobs)
    n = nodes_to_start(ClusterLoad(ready, slots, max_jobs, free, live))
    assert 0 <= n <= max_jobs - live
    if ready <= free:
        assert n == 0


def test_idle_nodes_to_stop_after_timeout():
    assert idle_nodes_to_stop({"a": 0.0, "b": 25.0}, now=31.0, idle_timeout_s=30) == ["a"]
    assert idle_nodes_to_stop({"a": 0.0, "b": 1.0}, now=100.0, idle_timeout_s=30, keep=1) == ["a"]


def test_interruption_never_decides_nor_spends_retries():
    out = attempt_outcome(exit_code=0, interrupted=True, retries_used=0, max_retries=0)
    assert out.status == RunStatus.QUEUED and not out.spends_retry
    assert attempt_outcome(0, False, 0, 0).status == RunStatus.COMPLETED
    assert attempt_outcome(2, False, 0, 0).status == RunStatus.FAILED
    retry = attempt_outcome(2, False, 0, 1)
    assert retry.status == RunStatus.QUEUED and retry.spends_retry
    assert attempt_outcome(2, False, 1, 1).status == RunStatus.FAILED


def test_dependency_readiness():
    assert dependency_readiness({"e@a": RunStatus.COMPLETED}).ready
    assert not dependency_readiness({"e@a": RunStatus.RUNNING}).ready
    failed = dependency_readiness({"e@a": RunStatus.COMPLETED, "e@b": RunStatus.FAILED})
    assert not failed.ready and failed.failed_reason == "dependency e@b failed"
    assert "does not exist" in dependency_readiness({"e@x": None}).failed_reason


def test_run_queue_indexes_ready_and_waiting_runs():
    q = RunQueue()
    q.add_ready("e@a", "c")
    q.add_ready("e@b", "c")
    q.add_waiting("e@c", {"e@a", "e@b"})
    assert q.head("c", 1) == ["e@a"] and q.ready_count("c") == 2
    assert q.waiting_on("e@a") == ["e@c"]
    q.remove("e@a")
    assert q.head("c", 5) == ["e@b"]
    q.add_ready("e@c", "c")  # became ready: it leaves the waiting index
    assert q.waiting_on("e@b") == [] and "e@c" in q
    q.remove("e@c")
    assert "e@c" not in q and q.clusters() == ["c"]
