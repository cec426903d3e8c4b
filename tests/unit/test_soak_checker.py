"""The soak's checker and schedule on made-up evidence: each invariant it guards is caught."""

from __future__ import annotations

from juqueue.soak.checker import check
from juqueue.soak.evidence import AttemptJournal, SoakEvidence
from juqueue.soak.schedule import DISK_PHASES, LOCAL_KINDS, SLURM_KINDS, make_schedule

GID = "soak@w00r00"


def evidence(status="completed", attempts=None, journals=None, verbs=None, feed_last="completed", leftovers=None,
             expected=0, integrity="ok") -> SoakEvidence:
    attempts = attempts if attempts is not None else [
        {"number": 1, "started_at": 10.0, "ended_at": 20.0, "exit_code": -15, "end_reason": "interrupted", "stop_reason": "move",
         "interrupted_by": "moved", "node": "a"},
        {"number": 2, "started_at": 21.0, "ended_at": 30.0, "exit_code": 0, "end_reason": "exited", "stop_reason": None,
         "interrupted_by": None, "node": "b"}]
    journals = journals if journals is not None else [
        AttemptJournal(1, 10.1, 19.9, starts=1, stopped=True),
        AttemptJournal(2, 21.1, 29.9, starts=1, end_code=expected, end_t=29.9)]
    last = attempts[-1]["number"] if attempts else 0
    return SoakEvidence(
        meta={"expected_exit": {GID: expected}},
        runs={GID: {"global_id": GID, "status": status, "attempt": last, "exit_code": 0, "reason": None, "retries_used": 0}},
        attempts={GID: attempts}, journals={GID: journals}, start_order={GID: [j.number for j in journals]},
        verbs=verbs or [], feed={"seen": {GID: ["queued", feed_last]}}, leftovers=leftovers or {}, integrity=integrity)


def test_a_soak_that_held_has_no_violation():
    assert check(evidence()) == []


def test_a_run_left_running_is_a_violation():
    (v,) = [v for v in check(evidence(status="running", feed_last="running")) if "not final" in v]
    assert GID in v


def test_failed_for_a_cause_outside_its_command_is_a_violation():
    journals = [AttemptJournal(1, 10.1, 19.9, starts=1), AttemptJournal(2, 21.1, 25.0, starts=1)]  # killed, never ended
    violations = check(evidence(status="failed", journals=journals, feed_last="failed"))
    assert any("never finished its work" in v for v in violations), violations


def test_completed_though_the_command_decided_failure_is_a_violation():
    journals = [AttemptJournal(1, 10.1, 19.9, starts=1, stopped=True), AttemptJournal(2, 21.1, 29.9, starts=1, end_code=3, end_t=29.9)]
    assert any("its command decided failed" in v for v in check(evidence(journals=journals, expected=3)))


def test_completed_though_juqueue_interrupted_its_last_attempt_is_a_violation():
    ev = evidence()
    ev.attempts[GID][-1].update(end_reason="interrupted", stop_reason="move")
    assert any("was stopped by JuQueue" in v for v in check(ev))


def test_overlapping_attempts_are_a_violation_by_journal_and_by_store():
    journals = [AttemptJournal(1, 10.1, 22.0, starts=1, stopped=True), AttemptJournal(2, 21.1, 29.9, starts=1, end_code=0, end_t=29.9)]
    ev = evidence(journals=journals)
    ev.attempts[GID][0]["ended_at"] = 22.0
    violations = check(ev)
    assert any("attempts 1 and 2 overlapped" in v for v in violations)
    assert any("store's attempts 1 and 2 overlap" in v for v in violations)


def test_an_attempt_number_started_twice_is_a_violation():
    ev = evidence()
    ev.start_order[GID] = [1, 1, 2]
    assert any("did not only grow" in v for v in check(ev))


def test_cancelled_without_a_cancel_is_a_violation_and_with_one_is_not():
    assert any("cancelled, but" in v for v in check(evidence(status="cancelled", feed_last="cancelled")))
    ok = evidence(status="cancelled", feed_last="cancelled", verbs=[{"t": 25.0, "verb": "cancel", "runs": [GID]}])
    assert check(ok) == []
    requeued_after = [{"t": 25.0, "verb": "cancel", "runs": [GID]}, {"t": 26.0, "verb": "requeue", "runs": [GID]}]
    assert any("cancelled, but" in v for v in check(evidence(status="cancelled", feed_last="cancelled", verbs=requeued_after)))


def test_leftovers_a_broken_store_and_a_feed_that_missed_the_end_are_violations():
    violations = check(evidence(leftovers={"processes": [[123, "valkey-server /w/.juqueue/broker/x.conf"]], "jobs": ["7 soak1 RUNNING"]},
                                integrity="*** page 3 is never used", feed_last="running"))
    assert any("process 123 outlived" in v for v in violations)
    assert any("SLURM job outlived" in v for v in violations)
    assert any("integrity check" in v for v in violations)
    assert any("feed client's last word was running" in v for v in violations)


def test_the_schedule_is_the_seeds_and_holds_every_kind_and_a_quiet_tail():
    a, b = make_schedule(7, 180), make_schedule(7, 180)
    assert a == b and a != make_schedule(8, 180)
    assert set(LOCAL_KINDS) | set(DISK_PHASES) <= {f.kind for f in a}
    assert all(5 <= f.at < 180 - 45 for f in a)
    assert [f.kind for f in a if f.kind in DISK_PHASES] == list(DISK_PHASES)
    assert set(SLURM_KINDS) <= {f.kind for f in make_schedule(7, 600, slurm=True)}
    assert not {f.kind for f in make_schedule(7, 180, disk=False)} & set(DISK_PHASES)
