"""What `juqueue watch` knows of the server, kept from snapshots and the live feed's deltas.

Pure: no I/O, no clock (every function takes `now`). A snapshot (the answers of `/api/status`
and `/api/experiments`, a few recent runs) replaces everything; a feed `delta` updates the
nodes, the counts of all runs and the list of last events in place, and marks the
per-experiment figures stale, so the loop refetches the two overview answers (never the runs).
`until_done` is the decision `--until-done` exits on; `eta_s` the time left per experiment.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

FINAL = ("completed", "failed", "cancelled")
NOT_GREEN = ("failed", "cancelled")  # a final run in one of these makes `--until-done` exit 1
LIVE_NODE_STATES = ("up", "draining", "stopping")
PENDING_NODE_STATES = ("pending", "starting")
ENDED_NODE_STATES = ("gone", "failed")
MAX_EVENTS = 50
RATE_WINDOW_S = 600.0  # the completion rate behind an ETA is measured over the last ten minutes


@dataclass(frozen=True)
class Event:
    """One line of the "last events": when, which experiment (None: a node's), what."""

    ts: float
    experiment: str | None
    text: str
    style: str = ""


@dataclass
class WatchState:
    """Everything the renderer draws. `focus` is `--experiment` (None: all of them)."""

    server: str
    focus: str | None = None
    version: str = ""
    store_error: str | None = None
    broker_error: str | None = None
    definition_errors: list[str] = field(default_factory=list)
    counts: dict[str, int] | None = None
    clusters: list[dict] = field(default_factory=list)
    experiments: dict[str, dict] = field(default_factory=dict)
    batch: dict | None = None
    events: deque[Event] = field(default_factory=lambda: deque(maxlen=MAX_EVENTS))
    feed: str = "snapshot"  # how the view is kept fresh: live, polling, reconnecting (why), snapshot
    fetched_at: float | None = None
    unreachable_since: float | None = None
    progress: dict[str, deque[tuple[float, int]]] = field(default_factory=dict)
    experiment_clusters: dict[str, str] = field(default_factory=dict)
    stale: bool = False  # a delta arrived after the last snapshot: per-experiment figures are behind

    def watched_counts(self) -> dict[str, int] | None:
        """Runs per status of what is watched: the focused experiment's, else every run's."""
        if self.focus is None:
            return self.counts
        exp = self.experiments.get(self.focus)
        return None if exp is None else dict(exp.get("counts") or {})

    def node_count(self, cluster: str) -> int:
        """Live nodes of a cluster (what an ETA from the projection divides by)."""
        return sum(1 for c in self.clusters if c.get("name") == cluster
                   for n in c.get("nodes") or [] if n.get("state") in LIVE_NODE_STATES)


def until_done(counts: Mapping[str, int] | None) -> int | None:
    """`--until-done`'s exit code: None while a run is not final (or nothing is known), 0 when every
    run is final and none failed or was cancelled, 1 when some did (as `hq job wait` does)."""
    if counts is None:
        return None
    if any(n > 0 for status, n in counts.items() if status not in FINAL):
        return None
    return 1 if any(counts.get(s, 0) > 0 for s in NOT_GREEN) else 0


def apply_snapshot(state: WatchState, status: Mapping[str, Any], experiments: Iterable[Mapping[str, Any]],
                   now: float) -> None:
    """Replace what the overview answers carry; record each experiment's progress for its ETA."""
    state.version = str(status.get("version") or "")
    state.store_error = status.get("store_error")
    state.broker_error = status.get("broker_error")  # not sent by today's servers; shown when one does
    state.definition_errors = list(status.get("definition_errors") or [])
    state.counts = dict(status["counts"]) if status.get("counts") is not None else None
    state.clusters = [dict(c, nodes=[dict(n) for n in c.get("nodes") or []]) for c in status.get("clusters") or []]
    state.batch = status.get("batch")
    state.experiments = {e["name"]: dict(e) for e in experiments}
    for name, exp in state.experiments.items():
        history = state.progress.setdefault(name, deque(maxlen=200))
        done = sum((exp.get("counts") or {}).get(s, 0) for s in FINAL)
        if history and done < history[-1][1]:
            history.clear()  # runs were requeued: the old rate says nothing now
        history.append((now, done))
    state.fetched_at, state.unreachable_since, state.stale = now, None, False


def apply_delta(state: WatchState, delta: Mapping[str, Any]) -> None:
    """One feed `delta`: its nodes replace theirs (an ended one leaves), its counts are every run's,
    its runs and node changes become events. Per-experiment figures are refetched later (`stale`)."""
    ts = float(delta.get("ts") or 0.0)
    if delta.get("counts") is not None:
        state.counts = dict(delta["counts"])
    for node in delta.get("nodes") or []:
        _apply_node(state, dict(node), ts)
    for run in delta.get("runs") or []:
        state.experiment_clusters.setdefault(run["experiment"], run.get("cluster") or "")
        if state.focus is None or run["experiment"] == state.focus:
            state.events.append(run_event(run, ts))
    state.stale = True


def _apply_node(state: WatchState, node: dict, ts: float) -> None:
    cluster = next((c for c in state.clusters if c.get("name") == node.get("cluster")), None)
    if cluster is None:
        cluster = {"name": node.get("cluster"), "type": node.get("type"), "nodes": []}
        state.clusters.append(cluster)
    nodes = cluster.setdefault("nodes", [])
    old = next((n for n in nodes if n.get("name") == node["name"]), None)
    if old is None or old.get("state") != node.get("state"):
        reason = str(node.get("reason") or "")
        reason = reason.split(": ", 1)[1] if reason.startswith(f"{node.get('state')}: ") else reason
        why = f": {reason}" if reason and node.get("state") != "up" else ""
        style = "red" if node.get("state") == "failed" else ""
        state.events.append(Event(ts, None, f"node {node['name']} {node.get('state')}{why}", style))
    if old is not None:
        nodes.remove(old)
    if node.get("live", True) and node.get("state") not in ENDED_NODE_STATES:
        nodes.append(node)
        nodes.sort(key=lambda n: n.get("name") or "")


def run_event(run: Mapping[str, Any], ts: float | None = None) -> Event:
    """What a run's new row says, as one line: where it runs, how it ended, why it waits."""
    status = run.get("status")
    gid = run.get("global_id") or f"{run.get('experiment')}@{run.get('id')}"
    text = f"{gid} {status}"
    if status in ("running", "assigned") and run.get("node"):
        text += f" on {run['node']}" + (f" (attempt {run['attempt']})" if (run.get("attempt") or 0) > 1 else "")
    if run.get("reason") and status not in ("running", "completed"):
        text += f": {run['reason']}"
    elif status == "failed" and run.get("exit_code") is not None:
        text += f" (exit {run['exit_code']})"
    when = ts if ts is not None else (run.get("ended_at") or run.get("started_at") or run.get("queued_at") or 0.0)
    style = {"failed": "red", "completed": "green", "cancelled": "dim", "running": "cyan"}.get(str(status), "")
    return Event(float(when), run.get("experiment"), text, style)


def seed_events(state: WatchState, runs: Iterable[Mapping[str, Any]]) -> None:
    """The last events before the view started (or, polling, since the last poll): recent runs as
    their rows say, oldest first, each at its own time."""
    runs = list(runs)
    seen = {(e.ts, e.text) for e in state.events}
    for event in sorted((run_event(r) for r in runs), key=lambda e: e.ts):
        if (event.ts, event.text) not in seen and (state.focus is None or event.experiment == state.focus):
            state.events.append(event)
    for run in runs:
        state.experiment_clusters.setdefault(run["experiment"], run.get("cluster") or "")
    ordered = sorted(state.events, key=lambda e: e.ts)
    state.events.clear()
    state.events.extend(ordered)


def eta_s(state: WatchState, name: str, now: float) -> tuple[float | None, bool]:
    """Seconds until the experiment's runs are final, and whether that is only an estimate from
    its projected node-hours (no completion seen yet). (None, False): not known."""
    exp = state.experiments.get(name) or {}
    counts = exp.get("counts") or {}
    left = sum(n for s, n in counts.items() if s not in FINAL and s != "held")
    if left == 0:
        return (None, False) if counts.get("held") else (0.0, False)  # held runs wait for a user, not a node
    history = [(t, d) for t, d in state.progress.get(name, ()) if now - t <= RATE_WINDOW_S]
    if len(history) >= 2 and history[-1][1] > history[0][1] and history[-1][0] > history[0][0]:
        rate = (history[-1][1] - history[0][1]) / (history[-1][0] - history[0][0])
        return left / rate, False
    projected = exp.get("projected_node_hours")
    nodes = state.node_count(state.experiment_clusters.get(name, "")) or sum(
        state.node_count(c.get("name") or "") for c in state.clusters)
    if projected and nodes:
        return projected * 3600.0 / nodes, True
    return None, False
