"""What emptying a node costs and what it saves, both in node-seconds, so they compare.

Lost work. A moved run throws away its progress since its last checkpoint (`at_risk_s`): 0
when it saves its state on SIGTERM (`checkpoint_on_term`); since the checkpoint its worker
reported (`last_checkpoint_at`, when taken during this attempt); else inferred from its declared
`checkpoint_interval` (its progress in this attempt modulo the interval; progress starts
`restart_cost` after the start of an attempt that resumes an interrupted one; before the first
checkpoint the whole attempt); else, nothing known, its whole attempt so far. Its next attempt then spends `restart_cost` before new progress. So a run costs
slots * (at_risk + restart_cost) slot-seconds; redoing them takes slots/slots_total of a node,
so emptying a node costs their sum / slots_total node-seconds. A run moved a moment ago has not
checkpointed since, and costs as much as its age, no longer less than an old run with a fresh
checkpoint. A node whose wall-time warning comes within `consolidate_after` loses its runs'
attempts soon anyway: its cost is 0.

The oldest runs stay (`oldest_runs`): one node's worth (num_slots slots) of the cluster's runs
whose attempts started first. They are likely the sweep's tail, and a restart of the tail
stretches the makespan. The nodes holding them become surplus last and are emptied only when
no other surplus node can be (when every node holds one, say, the cheapest still goes).

Saved node-seconds. Left alone, the node bills until its last run ends: R = the max over its
runs of their remaining time, but no later than its wall-time warning plus the grace period
(it is drained then). Emptied, it still bills the grace period while its runs stop. So
saved = max(0, min(R - grace_period, warning - now)).

Remaining time of a run. Its expected duration minus its elapsed time when the duration is
known and not yet exceeded. When it is unknown, or the run already outlived its estimate,
we assume it runs at least as long again as it has run so far (remaining = elapsed): the
median guess for a lifetime seen only from its start (half of the runs that lived t live
past 2t). A run that has just started is cheap to move and not worth waiting for.

A move is allowed when lost <= saved. When it is not and every run's duration is known,
the runs end before the loss would pay back: "waiting for runs to end". Otherwise the
estimate is our assumption: "a move would lose more than it saves".
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping

from juqueue.policy.consolidation_model import ClusterSettings, NodeSnapshot, Refusal, RunOnNode


def elapsed_s(run: RunOnNode, now: float) -> float:
    return max(0.0, now - run.attempt_started_at)


NO_MEDIANS: Mapping[str, float | None] = {}


def expected_s(run: RunOnNode, medians: Mapping[str, float | None] = NO_MEDIANS) -> float | None:
    """Its own expected duration, else its experiment's median (ClusterSnapshot.medians); None: unknown."""
    own = run.expected_duration_s
    return own if own is not None or not medians else medians.get(run.experiment)


def duration_known(run: RunOnNode, now: float, medians: Mapping[str, float | None] = NO_MEDIANS) -> bool:
    """A duration estimate the run has not yet outlived."""
    expected = expected_s(run, medians)
    return expected is not None and elapsed_s(run, now) < expected


def remaining_s(run: RunOnNode, now: float, medians: Mapping[str, float | None] = NO_MEDIANS) -> float:
    done = elapsed_s(run, now)
    expected = expected_s(run, medians)
    if expected is not None and done < expected:
        return expected - done
    return done


def at_risk_s(run: RunOnNode, now: float) -> float:
    """Its progress since its last checkpoint: what a stop now throws away (restart cost apart)."""
    if run.checkpoint_on_term:
        return 0.0
    elapsed = elapsed_s(run, now)
    interval = run.checkpoint_interval_s
    if run.last_checkpoint_at is not None and run.last_checkpoint_at >= run.attempt_started_at:
        since = max(0.0, now - run.last_checkpoint_at)
        if interval is not None and interval > 0 and since >= interval:
            since %= interval  # it kept checkpointing at its interval since the one reported
        return min(elapsed, since)
    if interval is not None:
        if interval <= 0:
            return 0.0
        # A resumed attempt makes progress only after its restart cost; it checkpoints every
        # `interval` of progress. Before its first checkpoint all of the attempt is lost.
        progress = elapsed - (run.restart_cost_s if run.resumed else 0.0)
        return elapsed if progress < interval else progress % interval
    return elapsed


def run_lost_s(run: RunOnNode, now: float) -> float:
    """Slot-seconds a stop of the run costs: its work since its last checkpoint plus its restart."""
    return run.slots * (at_risk_s(run, now) + run.restart_cost_s)


def oldest_runs(nodes: Iterable[NodeSnapshot], num_slots: int) -> frozenset[str]:
    """One node's worth (num_slots slots) of the runs whose attempts started first: never moved."""
    return oldest_of_firsts([(n.first_run, i, n) for i, n in enumerate(nodes) if n.runs], num_slots)


def oldest_of_firsts(firsts: list[tuple[tuple[float, str], int, NodeSnapshot]], num_slots: int) -> frozenset[str]:
    """`oldest_runs` from (first_run, position, node) of every node with runs."""
    # They lie on at most num_slots nodes: those whose first run started first.
    firsts = heapq.nsmallest(num_slots, firsts)
    runs = heapq.nsmallest(num_slots, (r for _, _, n in firsts for r in n.runs), key=lambda r: (r.attempt_started_at, r.gid))
    out: list[str] = []
    used = 0
    for run in runs:
        if used + run.slots > num_slots:
            break
        out.append(run.gid)
        used += run.slots
    return frozenset(out)


def wall_time_near(node: NodeSnapshot, now: float, consolidate_after_s: float) -> bool:
    return node.time_limit_at is not None and node.time_limit_at - now <= consolidate_after_s


def lost_node_seconds(node: NodeSnapshot, now: float, consolidate_after_s: float) -> float:
    """The cost of emptying the node now; also the order in which nodes are emptied."""
    if wall_time_near(node, now, consolidate_after_s):
        return 0.0
    return sum(run_lost_s(r, now) for r in node.runs) / max(1, node.slots_total)


def saved_node_seconds(node: NodeSnapshot, now: float, grace_period_s: float,
                       medians: Mapping[str, float | None] = NO_MEDIANS) -> float:
    longest = max((remaining_s(r, now, medians) for r in node.runs), default=0.0)
    saved = longest - grace_period_s
    if node.time_limit_at is not None:
        saved = min(saved, node.time_limit_at - now)
    return max(0.0, saved)


def destination_need_s(run: RunOnNode, now: float, medians: Mapping[str, float | None] = NO_MEDIANS) -> float:
    """Wall time a destination must have left for the run: its expected duration when known
    (the move may restart it from scratch), else what we assume it still needs (elapsed)."""
    expected = expected_s(run, medians)
    if expected is not None:
        return expected
    return elapsed_s(run, now)


def node_refusal(node: NodeSnapshot, settings: ClusterSettings, now: float,
                 medians: Mapping[str, float | None] = NO_MEDIANS) -> tuple[Refusal, str] | None:
    """Why this node must not be emptied now, from its runs alone (room is checked apart)."""
    for run in node.runs:
        if not run.movable:
            return Refusal.NOT_MOVABLE, f"{node.name}: run {run.gid} is movable: false"
    for run in node.runs:
        if run.moved_at is not None and now - run.moved_at < settings.move_cooldown_s:
            return Refusal.COOLDOWN, (f"{node.name}: run {run.gid} moved {now - run.moved_at:.0f} s ago "
                                      f"(move_cooldown {settings.move_cooldown_s:.0f} s)")
    lost = lost_node_seconds(node, now, settings.consolidate_after_s)
    saved = saved_node_seconds(node, now, settings.grace_period_s, medians)
    if lost > saved:
        known = all(duration_known(r, now, medians) for r in node.runs)
        reason = Refusal.WAITING_FOR_RUNS if known else Refusal.LOSES_MORE
        return reason, f"{node.name}: a move would lose {lost:.0f} node-s to save {saved:.0f}"
    return None
