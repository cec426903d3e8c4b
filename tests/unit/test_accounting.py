"""Node-hours by hand: billed, busy, efficiency, lost work and who is charged."""

from __future__ import annotations

import pytest

from juqueue.accounting import AttemptSpan, NodeBill, changed_sample, compute_usage, downsample


def test_hand_computed_usage() -> None:
    nodes = [
        NodeBill("n1", "c", 4, 0.0, 100.0),  # 100 s billed
        NodeBill("n2", "c", 4, 50.0, None, estimated=True),  # live: bills up to now = 150 -> 100 s
        NodeBill("n3", "c", 4, 10.0, 20.0),  # ran nothing: 10 s to the cluster
        NodeBill("pending", "c", 4, None),  # never started: bills nothing
    ]
    attempts = [
        AttemptSpan("n1", "a", 0.0, 60.0),  # 60
        AttemptSpan("n1", "b", 0.0, 20.0, interrupted=True),  # 20, lost
        AttemptSpan("n2", "a", 50.0, None),  # 100 (live)
        AttemptSpan("n2", "b", 60.0, 80.0, slots=2),  # 40
    ]
    u = compute_usage(nodes, attempts, now=150.0)
    c = u.clusters["c"]
    assert c.node_seconds == pytest.approx(210.0) and c.nodes == 3
    assert c.busy_slot_seconds == pytest.approx(220.0)
    assert c.busy_slot_seconds / c.slot_seconds == pytest.approx(220.0 / (210.0 * 4))
    assert c.lost_seconds == pytest.approx(20.0) and c.estimated
    # n1: a 60/80 and b 20/80 of 100 s; n2: a 100/140 and b 40/140 of 100 s
    assert u.experiments["a"].node_seconds == pytest.approx(75.0 + 100.0 * 100 / 140)
    assert u.experiments["b"].node_seconds == pytest.approx(25.0 + 100.0 * 40 / 140)
    assert u.unattributed == {"c": pytest.approx(10.0)}
    assert u.experiments["a"].node_seconds + u.experiments["b"].node_seconds + 10.0 == pytest.approx(c.node_seconds)
    d = u.as_dict()
    assert d["clusters"]["c"]["node_hours"] == pytest.approx(210 / 3600, abs=1e-6)
    assert set(d["clusters"]["c"]) == {"node_hours", "busy_slot_hours", "efficiency", "lost_hours", "nodes", "estimated"}


def test_series_keeps_changes_and_downsamples_evenly() -> None:
    assert changed_sample(None, 0, 0) and not changed_sample((1, 2), 1, 2) and changed_sample((1, 2), 1, 3)
    points = [(float(i), i, i) for i in range(1001)]
    small = downsample(points, 11)
    assert len(small) == 11 and small[0] == points[0] and small[-1] == points[-1]
    assert downsample(points[:5], 11) == points[:5]
