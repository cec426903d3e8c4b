"""What each experiment still has to run, read with a few grouped queries (no spec is loaded
whole): the basis of its projected node-hours in `GET /api/experiments`.

A run's expected duration is its own `duration` (the column copied from its definition when it
is stored: the queries read one index, not every queued run's JSON), else its experiment's median
of completed run times (`policy.duration.expected_duration`); a live run counts what is left of
it since its start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sqlalchemy import func, select
from sqlmodel import Session

from juqueue.policy.duration import expected_duration
from juqueue.status import RunStatus
from juqueue.store.tables import RunRow

_QUEUED = RunStatus.QUEUED.value
_LIVE = (RunStatus.ASSIGNED.value, RunStatus.RUNNING.value)


@dataclass(frozen=True)
class RemainingWork:
    """An experiment's queued and live runs: their cluster (the first, by name) and how many
    run-seconds they are expected to need (None: some run's duration is unknown)."""

    cluster: str
    runs: int
    seconds: float | None


def remaining_work(s: Session, now: float,
                   completed: Callable[[list[str]], dict[str, list[float]]]) -> dict[str, RemainingWork]:
    """Per experiment with queued or live runs. `completed` gives each experiment's recent
    completed run times (the median's basis; asked only for experiments that need it)."""
    duration = RunRow.duration
    rows = s.execute(select(RunRow.experiment, func.min(RunRow.cluster), func.count())
                     .where(RunRow.status.in_((_QUEUED, *_LIVE)))  # type: ignore[attr-defined]
                     .group_by(RunRow.experiment)).all()
    # grouped by duration, in the order of the (status, experiment, duration, cluster) index
    queued: dict[str, tuple[float, int]] = {}  # experiment -> (run-seconds of those with a duration, runs without)
    for exp, own, n in s.execute(select(RunRow.experiment, duration, func.count())
                                 .where(RunRow.status == _QUEUED).group_by(RunRow.experiment, duration)).all():
        known_s, unknown = queued.get(exp, (0.0, 0))
        queued[exp] = (known_s + own * n, unknown) if own is not None else (known_s, unknown + n)
    live = s.execute(select(RunRow.experiment, RunRow.started_at, duration)
                     .where(RunRow.status.in_(_LIVE))).all()  # type: ignore[attr-defined]
    live_by: dict[str, list[tuple[float | None, float | None]]] = {}
    for exp, started, own in live:
        live_by.setdefault(exp, []).append((started, own))
    need_median = sorted({exp for exp, (_s, unknown) in queued.items() if unknown}
                         | {exp for exp, items in live_by.items() if any(own is None for _s, own in items)})
    medians = {exp: expected_duration(None, times) for exp, times in completed(need_median).items()} if need_median else {}
    out = {}
    for exp, cluster, n in rows:
        known_s, unknown = queued.get(exp, (0.0, 0))
        median = medians.get(exp)
        seconds: float | None = float(known_s or 0.0)
        if unknown:
            seconds = None if median is None else seconds + unknown * median  # type: ignore[operator]
        for started, own in live_by.get(exp, ()):
            expected = own if own is not None else median
            if expected is None or seconds is None:
                seconds = None
                break
            seconds += max(0.0, expected - (now - started)) if started is not None else expected
        out[exp] = RemainingWork(cluster=cluster, runs=int(n), seconds=seconds)
    return out
