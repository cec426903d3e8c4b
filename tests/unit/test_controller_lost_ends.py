"""A started attempt whose end nothing recorded: its exit event was lost (the broker was away)
and its exit file could not be written (a full disk). Found by the chaos soak: such a run stayed
`running` for good on a healthy node whose heartbeats no longer listed it."""

from __future__ import annotations

from controller_fakes import run_specs
from juqueue.definitions.models import ClusterSpec
from juqueue.status import RunStatus

RUNNING, ASSIGNED = RunStatus.RUNNING.value, RunStatus.ASSIGNED.value


def _running(make):
    h = make([ClusterSpec(name="c", type="local", num_slots=2, max_jobs=1, heartbeat_interval=1)], run_specs(2, "c"))
    h.step()
    (node,) = h.nodes_of("c")
    h.heartbeat(node)
    h.step()
    h.started("exp@r0")
    h.started("exp@r1", slot=1)
    h.step()
    assert h.status("exp@r0") == RUNNING
    return h, node


def test_an_unlisted_attempt_without_exit_event_or_file_is_requeued_after_the_grace(make):
    h, node = _running(make)
    h.worker_running[node].discard("exp@r0|1")  # it ended; its `exited` event and exit file were lost
    h.clock.advance(1)
    h.heartbeat(node)
    h.step()
    assert h.status("exp@r0") == RUNNING  # an exit event may still be on its way
    h.clock.advance(59)
    h.heartbeat(node)
    h.step()
    assert h.status("exp@r0") == RUNNING  # within the grace
    h.clock.advance(2)
    h.heartbeat(node)
    h.step()
    row = h.run("exp@r0")
    assert (row.status, row.attempt, row.retries_used) == (ASSIGNED, 2, 0)  # an interruption: no retry spent
    first = h.store.attempts_of("exp@r0")[0]
    assert (first.end_reason, first.interrupted_by) == ("interrupted", "its end was lost (no exit event, no exit file)")
    assert h.status("exp@r1") == RUNNING  # the run the node still lists is untouched


def test_a_late_exit_event_inside_the_grace_decides_the_run(make):
    h, node = _running(make)
    h.worker_running[node].discard("exp@r0|1")
    h.clock.advance(1)
    h.heartbeat(node)
    h.step()
    h.clock.advance(20)
    h.exited("exp@r0", 0)  # the broker is back and the worker's event arrives
    h.heartbeat(node)
    h.step()
    h.clock.advance(60)
    h.heartbeat(node)
    h.step()
    row = h.run("exp@r0")
    assert (row.status, row.attempt, row.exit_code) == (RunStatus.COMPLETED.value, 1, 0)
