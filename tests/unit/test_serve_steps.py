"""The step runner: dependency order, reverse stop of the started steps only, failures mid-start."""

from __future__ import annotations

import pytest

from juqueue.serve.server import serve_steps
from juqueue.serve.steps import StepRunner, dependency_order


class FakeStep:
    def __init__(self, name: str, log: list[str], requires: tuple[str, ...] = (), fail_start: bool = False,
                 fail_stop: bool = False) -> None:
        self.name, self.requires, self.log = name, requires, log
        self.fail_start, self.fail_stop = fail_start, fail_stop

    def start(self, ctx: object) -> None:
        if self.fail_start:
            self.log.append(f"fail {self.name}")
            raise RuntimeError(f"{self.name} broke")
        self.log.append(f"start {self.name}")

    def stop(self, ctx: object) -> None:
        self.log.append(f"stop {self.name}")
        if self.fail_stop:
            raise RuntimeError(f"{self.name} would not stop")


def test_starts_in_order_and_stops_in_reverse():
    log: list[str] = []
    runner = StepRunner([FakeStep("a", log), FakeStep("b", log, ("a",)), FakeStep("c", log, ("b",))])
    runner.start(None)
    runner.stop(None)
    assert log == ["start a", "start b", "start c", "stop c", "stop b", "stop a"]
    runner.stop(None)  # stopped steps are not stopped twice
    assert len(log) == 6


def test_requirements_reorder_steps():
    log: list[str] = []
    steps = [FakeStep("api", log, ("store",)), FakeStep("store", log, ("lock",)), FakeStep("lock", log), FakeStep("x", log)]
    assert [s.name for s in dependency_order(steps)] == ["lock", "store", "api", "x"]


def test_bad_requirements_are_refused():
    log: list[str] = []
    with pytest.raises(ValueError, match="unknown"):
        dependency_order([FakeStep("a", log, ("nope",))])
    with pytest.raises(ValueError, match="cycle"):
        dependency_order([FakeStep("a", log, ("b",)), FakeStep("b", log, ("a",))])
    with pytest.raises(ValueError, match="repeat"):
        dependency_order([FakeStep("a", log), FakeStep("a", log)])


def test_a_step_failing_mid_start_stops_only_the_started_ones():
    log: list[str] = []
    runner = StepRunner([FakeStep("a", log), FakeStep("b", log), FakeStep("c", log, fail_start=True), FakeStep("d", log)])
    with pytest.raises(RuntimeError, match="c broke"):
        runner.start(None)
    assert log == ["start a", "start b", "fail c", "stop b", "stop a"]
    assert runner.started == []


def test_a_failing_stop_does_not_keep_the_others_running():
    log: list[str] = []
    runner = StepRunner([FakeStep("a", log), FakeStep("b", log, fail_stop=True), FakeStep("c", log)])
    runner.start(None)
    runner.stop(None)
    assert log[3:] == ["stop c", "stop b", "stop a"]


def test_serve_steps_are_in_dependency_order():
    steps = serve_steps()
    assert [s.name for s in dependency_order(steps)] == [s.name for s in steps] == [
        "workdir", "listen", "store", "broker", "backends", "controller", "reloader", "helpers", "api"]
