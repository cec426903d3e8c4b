"""Steps and the runner that starts them in dependency order and stops them in reverse.

Modelled on Celery's worker bootsteps: each piece of `serve` is a step that reads its own
options, starts in `start(ctx)` and undoes exactly that in `stop(ctx)`. Only steps that
started are stopped, so a failure half-way through start leaves nothing behind, and a stop
that fails does not keep the steps before it from stopping."""

from __future__ import annotations

import logging
from typing import Generic, Protocol, Sequence, TypeVar

log = logging.getLogger("juqueue.server")

C = TypeVar("C")
C_contra = TypeVar("C_contra", contravariant=True)


class Step(Protocol[C_contra]):
    """One piece of the server. `requires` names the steps that must start before it."""

    name: str
    requires: tuple[str, ...]

    def start(self, ctx: C_contra) -> None: ...

    def stop(self, ctx: C_contra) -> None: ...


def dependency_order(steps: Sequence[Step[C]]) -> list[Step[C]]:
    """The steps with each after those it requires; otherwise in the order given."""
    by_name = {s.name: s for s in steps}
    if len(by_name) != len(steps):
        raise ValueError(f"step names repeat: {[s.name for s in steps]}")
    for step in steps:
        missing = [r for r in step.requires if r not in by_name]
        if missing:
            raise ValueError(f"step {step.name!r} requires unknown step(s) {missing}")
    ordered: list[Step[C]] = []
    placed: set[str] = set()
    while len(ordered) < len(steps):
        ready = next((s for s in steps if s.name not in placed and all(r in placed for r in s.requires)), None)
        if ready is None:
            raise ValueError(f"steps require each other in a cycle: {sorted(set(by_name) - placed)}")
        ordered.append(ready)
        placed.add(ready.name)
    return ordered


class StepRunner(Generic[C]):
    """Starts steps in dependency order; stops the started ones in reverse."""

    def __init__(self, steps: Sequence[Step[C]]) -> None:
        self.steps = dependency_order(steps)
        self.started: list[Step[C]] = []

    def step(self, name: str) -> Step[C]:
        return next(s for s in self.steps if s.name == name)

    def start(self, ctx: C) -> None:
        """Start every step; when one fails, stop the ones already started and re-raise."""
        for step in self.steps:
            try:
                step.start(ctx)
            except BaseException:
                log.debug("step %s failed to start: stopping the %d started before it", step.name, len(self.started))
                self.stop(ctx)
                raise
            self.started.append(step)

    def stop(self, ctx: C) -> None:
        """Stop the started steps, last first; each stop's failure is logged, the rest go on."""
        while self.started:
            step = self.started.pop()
            try:
                step.stop(ctx)
            except Exception:
                log.exception("stopping %s failed", step.name)
