"""A run's checkpoint file as its worker reports it: `DefUtils.checkpointed()` touches it, the
attempt stats it (`LiveAttempt.checkpoint`), events carry it and decode it back."""

from __future__ import annotations

import os

from juqueue import DefUtils
from juqueue.events import HEARTBEAT, Event, checkpoint_entry, parse_checkpoints
from juqueue.paths import WorkDir
from juqueue.workers.attempt import LiveAttempt


def test_checkpointed_touches_the_file_named_by_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "logs" / "attempt-3.checkpoint"
    path.parent.mkdir()
    monkeypatch.delenv(DefUtils.CHECKPOINT_ENV, raising=False)
    assert DefUtils.checkpointed() is False  # outside JuQueue: nothing, no error
    monkeypatch.setenv(DefUtils.CHECKPOINT_ENV, str(path))
    assert DefUtils.checkpointed() is True and path.exists()
    os.utime(path, (1_000.0, 1_000.0))
    assert DefUtils.checkpointed() is True and path.stat().st_mtime > 1_000.0  # touched again: a newer mtime
    monkeypatch.setenv(DefUtils.CHECKPOINT_ENV, str(tmp_path / "missing-dir" / "f"))
    assert DefUtils.checkpointed() is False


def test_a_live_attempt_reports_its_checkpoint_file_mtime_once_it_exists(tmp_path):
    path = WorkDir(tmp_path).checkpoint_file("e", "r", 2)
    assert path == WorkDir(tmp_path).log_dir("e", "r") / "attempt-2.checkpoint"
    live = LiveAttempt("e@r", 2, (0,), checkpoint_file=str(path))
    assert live.checkpoint() is None and LiveAttempt("e@r", 2, (0,)).checkpoint() is None
    path.parent.mkdir(parents=True)
    path.touch()
    os.utime(path, (1_234.5, 1_234.5))
    assert live.checkpoint() == checkpoint_entry("e@r", 2, 1_234.5) == "e@r|2|1234.500"


def test_checkpoints_travel_in_events_and_bad_items_are_skipped():
    ev = Event(type=HEARTBEAT, node="n", ts=5.0, running=["a@b|1"],
               checkpoints=[checkpoint_entry("a@b", 1, 12.25), checkpoint_entry("x|y@z", 3, 1.0), "junk", "a@c|x|1"])
    back = Event.decode(ev.encode())
    assert back.checkpoints == ev.checkpoints and back.running == ["a@b|1"]
    assert parse_checkpoints(back.checkpoints) == {("a@b", 1): 12.25, ("x|y@z", 3): 1.0}
    assert "checkpoints" not in Event(type=HEARTBEAT).encode()  # nothing to say: nothing travels
