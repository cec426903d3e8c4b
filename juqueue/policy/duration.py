"""A run's expected duration, defined once: every feature that weighs a run's remaining
time (consolidation, wall-time fit, the simulator) asks here, so they never disagree."""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence

MIN_COMPLETED_FOR_MEDIAN = 3  # fewer completed runs say too little about their experiment

_CLOCK = re.compile(r"^(?:(?P<h>\d+):)?(?P<m>\d+):(?P<s>\d+(?:\.\d+)?)$")


def parse_duration(value: object) -> float:
    """Seconds from a `duration` value: a number >= 0, or "HH:MM:SS" / "MM:SS".

    Minutes and seconds below an hour/minute field must be < 60, so a typo such as
    "1:75:00" is an error, not 2 h 15 min. The error names the bad value.
    """
    if isinstance(value, bool):  # bool is an int; `duration: true` is a mistake
        raise ValueError(f"duration {value!r}: expected seconds (a number >= 0) or HH:MM:SS")
    if isinstance(value, (int, float)):
        seconds = float(value)
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"duration {value!r}: expected seconds (a number >= 0) or HH:MM:SS")
        return seconds
    if isinstance(value, str):
        match = _CLOCK.match(value.strip())
        if match:
            hours, minutes, secs = int(match["h"] or 0), int(match["m"]), float(match["s"])
            if secs < 60 and (match["h"] is None or minutes < 60):
                return hours * 3600.0 + minutes * 60.0 + secs
        raise ValueError(f"duration {value!r}: expected seconds (a number >= 0) or HH:MM:SS (or MM:SS)")
    raise ValueError(f"duration {value!r}: expected seconds (a number >= 0) or HH:MM:SS, got {type(value).__name__}")


def expected_duration(run_duration_s: float | None, completed_durations_of_experiment: Sequence[float]) -> float | None:
    """The run's own `duration` when given; else the median run time of its experiment's
    completed runs once there are at least three (a median, because run times of a sweep
    are heavy-tailed and one straggler must not move the estimate); else None: unknown."""
    if run_duration_s is not None:
        return float(run_duration_s)
    if len(completed_durations_of_experiment) >= MIN_COMPLETED_FOR_MEDIAN:
        return float(statistics.median(completed_durations_of_experiment))
    return None
