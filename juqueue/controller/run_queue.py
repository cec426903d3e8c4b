"""Queued runs, indexed so that placement and dependency updates cost O(changes).

Ready runs are kept per cluster in queue order (policy.queue_order: each run's key, given as
it becomes ready); runs waiting on dependencies are indexed by what they wait for, so a
finished run touches only its own dependents.

The order is a list of keys sorted on demand: a run that becomes ready is appended (a sort
follows only when it does not belong at the end; the sort merges the appended tail in linear
time), a run that leaves stays in the list as a stale entry until a compaction, so neither
costs a scan of the queue.
"""

from __future__ import annotations

from juqueue.policy.queue_order import QueueKey


class RunQueue:
    def __init__(self) -> None:
        self._ready: dict[str, dict[str, tuple]] = {}  # cluster -> ready gid -> its entry in _order
        self._order: dict[str, list[tuple]] = {}  # cluster -> (key, seq, gid) entries, stale ones included
        self._unsorted: set[str] = set()  # clusters whose _order needs a sort
        self._stale: dict[str, int] = {}  # cluster -> stale entries in its _order
        self._seq = 0  # order of addition: breaks ties between equal keys
        self._cluster_of: dict[str, str] = {}
        self._unmet: dict[str, set[str]] = {}  # waiting gid -> dependencies not yet completed
        self._dependents: dict[str, set[str]] = {}  # dependency -> waiting gids
        self._slots_of: dict[str, int] = {}  # ready gid -> slots it needs, when not 1
        self._ready_slots: dict[str, int] = {}  # cluster -> slots its ready runs need

    def add_ready(self, gid: str, cluster: str, slots: int = 1, key: QueueKey = ()) -> None:
        """The run is ready; `key` is its queue order (equal keys: first added first)."""
        self.remove(gid)
        order = self._order.setdefault(cluster, [])
        self._seq += 1
        entry = (key, self._seq, gid)
        if order and entry < order[-1]:
            self._unsorted.add(cluster)
        order.append(entry)
        self._ready.setdefault(cluster, {})[gid] = entry
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
            self._drop_entry(cluster)
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
        """The first `n` ready runs of a cluster in queue order (not removed)."""
        if n <= 0:
            return []
        order, ready = self._order.get(cluster, []), self._ready.get(cluster, {})
        if cluster in self._unsorted:
            order.sort()
            self._unsorted.discard(cluster)
        out: list[str] = []
        lead = 0  # stale entries before the first live one (placed runs leave from the front)
        for entry in order:
            if ready.get(entry[2]) is entry:  # (the live entry of a run added twice is the last one)
                out.append(entry[2])
                if len(out) >= n:
                    break
            elif not out:
                lead += 1
        if lead:
            del order[:lead]
            self._stale[cluster] = max(0, self._stale.get(cluster, 0) - lead)
        return out

    def _drop_entry(self, cluster: str) -> None:
        """A run left the ready set: its entry is stale; compact once they are half the list."""
        stale = self._stale.get(cluster, 0) + 1
        order = self._order.get(cluster, [])
        if stale * 2 > len(order) + 64:
            ready = self._ready.get(cluster, {})
            order[:] = [e for e in order if ready.get(e[2]) is e]
            stale = 0
        self._stale[cluster] = stale

    def clusters(self) -> list[str]:
        return [c for c, runs in self._ready.items() if runs]

    def __contains__(self, gid: str) -> bool:
        return gid in self._cluster_of or gid in self._unmet
