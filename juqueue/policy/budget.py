"""Node-hour budgets (pure): a node is started only if what was spent, what the live nodes can
still bill, and the new node's own wall time fit under every cap that applies."""

from __future__ import annotations

from collections.abc import Iterable


def node_start_fits(spent_s: float, live_remaining_s: float, new_node_s: float, cap_hours: float | None) -> bool:
    """True when starting one more node cannot take the cap's holder past it."""
    if cap_hours is None:
        return True
    return spent_s + live_remaining_s + new_node_s <= cap_hours * 3600.0


def budget_reason(spent_s: float, cap_hours: float) -> str:
    return f"node-hour budget reached (spent {spent_s / 3600:.2f} of {cap_hours:g})"


def projected_node_hours(expected_s: Iterable[float | None], num_slots: int) -> float | None:
    """What the remaining runs still need, in node-hours if they were packed perfectly
    (their expected run-seconds / num_slots); None ("unknown") when any has no estimate."""
    total = 0.0
    for seconds in expected_s:
        if seconds is None:
            return None
        total += seconds
    return total / max(1, num_slots) / 3600.0
