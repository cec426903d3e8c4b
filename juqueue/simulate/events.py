"""The simulation's event queue: what happens when, in a fixed order at one instant. The
cluster's bookkeeping pushes the events its changes imply (a node's queue wait ends, a run ends);
the loop in `engine` pops them."""

from __future__ import annotations

import heapq
from enum import IntEnum


class Ev(IntEnum):
    """Event kinds; at one instant they go in this order."""

    ARRIVE = 0
    BILL = 1
    UP = 2
    END = 3
    WALL = 4
    TICK = 5


class EventQueue:
    """A heap of (time, kind, seq, object): events at one instant go by kind (a run that ends
    exactly at its node's wall-time warning has ended), then in the order they were made."""

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, int, object]] = []
        self.seq = 0

    def push(self, at: float, kind: Ev, obj: object) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (at, kind, self.seq, obj))
