"""Queued runs, indexed so that placement and dependency updates cost O(changes).

Ready runs are kept per cluster in queue order; runs waiting on dependencies are indexed
by what they wait for, so a finished run touches only its own dependents.
"""

from __future__ import annotations

from itertools import islice


class RunQueue:
    def __init__(self) -> None:
        self._ready: dict[str, dict[str, None]] = {}
        self._cluster_of: dict[str, str] = {}
        self._unmet: dict[str, set[str]] = {}  # waiting gid -> dependencies not yet completed
        self._dependents: dict[str, set[str]] = {}  # dependency -> waiting gids
        self._slots_of: dict[str, int] = {}  # ready gid -> slots it needs, when not 1
        self._ready_slots: dict[str, int] = {}  # cluster -> slots its ready runs need

    def add_ready(self, gid: str, cluster: str, slots: int = 1) -> None:
        self.remove(gid)
        self._ready.setdefault(cluster, {})[gid] = None
        self._cluster_of[gid] = cluster
        if slots != 1:
            self._slots_of[gid] = slots
        self._ready_slots[cluster] = self._ready_slots.get(cluster, 0) + slots

    def add_waiting(self, gid: str, unmet: set[str]) -> None:
        self.remove(gid)
        self._unmet[gid] = set(unmet)
        for dep in unmet:
            self._dependents.setdefault(dep, set()).add(gid)

    def remove(self, gid: str) -> None:
        cluster = self._cluster_of.pop(gid, None)
        if cluster is not None:
            self._ready.get(cluster, {}).pop(gid, None)
            self._ready_slots[cluster] = self._ready_slots.get(cluster, 0) - self._slots_of.pop(gid, 1)
        for dep in self._unmet.pop(gid, ()):
            waiting = self._dependents.get(dep)
            if waiting is not None:
                waiting.discard(gid)
                if not waiting:
                    del self._dependents[dep]

    def waiting_on(self, dep: str) -> list[str]:
        return sorted(self._dependents.get(dep, ()))

    def ready_count(self, cluster: str) -> int:
        return len(self._ready.get(cluster, {}))

    def ready_slots(self, cluster: str) -> int:
        """Slots the ready runs of a cluster need (a k-slot run counts k)."""
        return self._ready_slots.get(cluster, 0)

    def head(self, cluster: str, n: int) -> list[str]:
        """The first `n` ready runs of a cluster (not removed)."""
        return list(islice(self._ready.get(cluster, {}), max(0, n)))

    def clusters(self) -> list[str]:
        return [c for c, runs in self._ready.items() if runs]

    def __contains__(self, gid: str) -> bool:
        return gid in self._cluster_of or gid in self._unmet
