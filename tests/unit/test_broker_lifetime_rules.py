"""The embedded broker's end, decided alone: the idle clock against the grace, and the ledger's
round trip (a damaged ledger is an empty one: no server, no node)."""

from __future__ import annotations

from juqueue.broker.lifetime import Ledger, ProcessRef, ServedNode, check_interval, decide, read_ledger, write_ledger
from juqueue.paths import WorkDir


def test_in_use_resets_the_idle_clock():
    assert decide(True, 100.0, 500.0, 60.0) == (None, False)


def test_unused_starts_the_clock_and_ends_only_after_the_whole_grace():
    since, end = decide(False, None, 100.0, 60.0)
    assert (since, end) == (100.0, False)
    assert decide(False, since, 159.9, 60.0) == (100.0, False)
    assert decide(False, since, 160.0, 60.0) == (100.0, True)


def test_use_in_between_starts_the_grace_again():
    since, _ = decide(False, None, 0.0, 10.0)
    since, _ = decide(True, since, 9.0, 10.0)
    since, end = decide(False, since, 15.0, 10.0)
    assert (since, end) == (15.0, False)


def test_check_interval_is_a_fifth_of_the_grace_within_bounds():
    assert check_interval(1.0) == 0.5
    assert check_interval(20.0) == 4.0
    assert check_interval(3600.0) == 15.0


def test_ledger_round_trip(tmp_path):
    work = WorkDir(tmp_path)
    work.broker_dir.mkdir(parents=True)
    ledger = Ledger(server=ProcessRef(12, 345), grace_s=7.5,
                    nodes=(ServedNode("c-1", "slurm", job_id="99"), ServedNode("l-1", "local", pid=5, start_time=6)))
    write_ledger(work, ledger)
    assert read_ledger(work) == ledger
    assert (work.broker_dir / "serving.json").stat().st_mode & 0o777 == 0o600


def test_a_damaged_ledger_is_empty(tmp_path):
    work = WorkDir(tmp_path)
    work.broker_dir.mkdir(parents=True)
    assert read_ledger(work) == Ledger()
    (work.broker_dir / "serving.json").write_text('{"server": {"pid": "x", "bogus": 1}, "nodes": [3]}')
    assert read_ledger(work) == Ledger()
    (work.broker_dir / "serving.json").write_text("not json")
    assert read_ledger(work) == Ledger()


def test_a_process_is_named_by_pid_and_start_time():
    import os

    from juqueue.broker.lifetime import ProcessRef
    from juqueue.broker.watcher import process_lives
    from juqueue.process_group import process_start_time

    me = os.getpid()
    assert process_lives(ProcessRef(me, process_start_time(me)))
    assert process_lives(ProcessRef(me))  # no start time recorded: the pid alone
    assert not process_lives(ProcessRef(me, (process_start_time(me) or 0) + 1))  # a reused pid is not it
    assert not process_lives(ProcessRef(2**22 + 7)) and not process_lives(None)


def test_jobs_count_as_alive_when_squeue_cannot_answer(monkeypatch, tmp_path):
    from juqueue.broker.watcher import slurm_jobs_alive

    monkeypatch.setenv("PATH", str(tmp_path))  # no squeue here
    assert slurm_jobs_alive(["12", "13"]) == {"12", "13"}
    assert slurm_jobs_alive([]) == set()


def test_a_live_local_worker_of_the_ledger_keeps_the_broker_in_use():
    import os

    from juqueue.broker.lifetime import Ledger, ServedNode
    from juqueue.broker.watcher import in_use
    from juqueue.process_group import process_start_time

    me = os.getpid()
    alive = Ledger(server=None, nodes=(ServedNode("l-1", "local", pid=me, start_time=process_start_time(me)),))
    assert in_use(alive) == (True, "local node l-1")
    gone = Ledger(server=None, nodes=(ServedNode("l-1", "local", pid=me, start_time=1),))
    assert in_use(gone) == (False, "")
    assert in_use(Ledger(server=ProcessRef(me, process_start_time(me)))) == (True, "the server")
