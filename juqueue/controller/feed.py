"""The live feed's messages, built once per committed batch on the controller thread.

`ControllerState.commit` calls `Feed.on_commit` after the store committed the batch and before
final runs and ended nodes leave memory. With no stream listening it only moves the id on
(`FeedBuffer.skip`: two attribute writes), so the run path pays nothing for the feed. With one
or more it builds one `delta` from what the batch changed, as plain copies serialized to JSON
text, and appends it to the shared ring (`feed_buffer.py`); streams only read that text.

A delta: the runs whose row changed (the runs list's shape), the nodes whose row changed (the
`NodeModel` shape, `live` false for a node that ended), the counts per status (all runs), and a
usage point per cluster (nodes held, slots busy). Changes that bypass the batch (a reload of
definitions writes runs itself) and a rebuild of memory after a store failure send `resync`.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Callable, Iterable

from juqueue.controller.feed_buffer import DELTA, RESYNC, FeedBuffer
from juqueue.controller.records import RunState
from juqueue.controller.state import ControllerState
from juqueue.status import NodeState, RunStatus
from juqueue.store.run_query import RunFilter
from juqueue.store.store import WriteBatch

log = logging.getLogger(__name__)

_FINAL = tuple(s.value for s in RunStatus if s.is_final)


def run_dict(run: RunState) -> dict:
    """A run in memory in the runs list's shape (`juqueue.api.routes.runs.run_to_dict`)."""
    return {
        "experiment": run.experiment, "id": run.run_id, "global_id": run.gid, "status": run.status.value,
        "attempt": run.attempt, "exit_code": run.exit_code, "node": run.node, "cluster": run.cluster,
        "queued_at": run.queued_at, "started_at": run.started_at, "ended_at": run.ended_at,
        "reason": run.reason, "defined": run.defined, "depends_on": list(run.depends_on),
        "retries_used": run.retries_used, "max_retries": run.max_retries,
    }


class StatusCounts:
    """Counts per status of every run, kept from the batches' status columns. Built from memory
    (the runs that are not final) and the store's final runs, once per stretch with a listener."""

    def __init__(self, statuses: dict[str, str]) -> None:
        self.status_of = statuses
        self.counts: Counter[str] = Counter(statuses.values())

    @classmethod
    def build(cls, state: ControllerState) -> "StatusCounts":
        statuses = {gid: run.status.value for gid, run in state.runs.items()}
        for status in _FINAL:  # final runs are not in memory: ids only, one query per final status
            for gid in state.store.run_ids(RunFilter(statuses=(status,))):
                statuses.setdefault(gid, status)
        return cls(statuses)

    def apply(self, runs: dict[str, dict]) -> None:
        for gid, columns in runs.items():
            new = columns.get("status")
            old = self.status_of.get(gid)
            if new is None or new == old:
                continue
            if old is not None:
                self.counts[old] -= 1
            self.counts[new] += 1
            self.status_of[gid] = new

    def as_dict(self) -> dict[str, int]:
        return {s.value: max(0, self.counts.get(s.value, 0)) for s in RunStatus}


class Feed:
    """The controller's side of the live feed. `node_rows(names)` gives those live nodes in
    `/api/nodes`' shape; `usage()` the usage point per cluster (nodes held, slots busy)."""

    def __init__(self, state: ControllerState, node_rows: Callable[[Iterable[str]], list[dict]],
                 usage: Callable[[], dict[str, tuple[int, int]]], buffer: FeedBuffer | None = None) -> None:
        self.s = state
        self.node_rows = node_rows
        self.usage = usage
        self.buffer = buffer or FeedBuffer()
        self._counts: StatusCounts | None = None

    def on_commit(self, batch: WriteBatch) -> None:
        """After the store committed `batch` (the controller thread): one delta, if anyone listens."""
        if not self.buffer.active:
            self._counts = None  # rebuilt when a stream listens again
            if batch:
                self.buffer.skip()
            return
        node_names = set(batch.nodes) | {n["name"] for n in batch.new_nodes}
        if not (batch.runs or node_names or batch.usage_samples):
            return
        try:
            self.buffer.publish(DELTA, self._delta(batch, node_names))
        except Exception:  # the feed must never break a batch that is committed already
            log.exception("live feed: could not build a delta; clients resync")
            self.resync("feed error")

    def resync(self, reason: str) -> None:
        """Memory or the store changed outside the batches: every client refetches."""
        self._counts = None
        if self.buffer.active:
            self.buffer.publish(RESYNC, {"reason": reason, "ts": self.s.now()})
        else:
            self.buffer.skip()

    def _delta(self, batch: WriteBatch, node_names: set[str]) -> dict:
        s = self.s
        if self._counts is None:
            self._counts = StatusCounts.build(s)  # after the commit: the batch is counted already
        else:
            self._counts.apply(batch.runs)
        runs = [run_dict(s.runs[g]) for g in sorted(batch.runs) if g in s.runs]
        nodes = []
        if node_names:
            for row in self.node_rows(node_names):
                live = NodeState(row["state"]).is_live
                ended_at = s.nodes[row["name"]].ended_at if row["name"] in s.nodes else None
                nodes.append({**row, "live": live, "ended_at": ended_at})
        usage = {c: {"nodes": held, "slots_busy": busy} for c, (held, busy) in self.usage().items()}
        return {"ts": s.now(), "runs": runs, "nodes": nodes, "counts": self._counts.as_dict(), "usage": usage}
