"""What emptying a node costs and what it saves, both in node-seconds, so they compare.

Lost work. A moved run throws away its attempt so far: (now - attempt_started_at) seconds
on `slots` slots. Redoing it takes slots/slots_total of a node for that long, so the move
costs sum(slots * elapsed) / slots_total node-seconds (the issue's "sum over its runs of the
time since its attempt started", weighted by slots and put in node-seconds; on nodes of one
size the order of nodes is the same). A node whose wall-time warning comes within
`consolidate_after` loses its runs' attempts soon anyway: its cost is 0.

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

from juqueue.policy.consolidation_model import ClusterSettings, NodeSnapshot, Refusal, RunOnNode


def elapsed_s(run: RunOnNode, now: float) -> float:
    return max(0.0, now - run.attempt_started_at)


def duration_known(run: RunOnNode, now: float) -> bool:
    """A duration estimate the run has not yet outlived."""
    return run.expected_duration_s is not None and elapsed_s(run, now) < run.expected_duration_s


def remaining_s(run: RunOnNode, now: float) -> float:
    done = elapsed_s(run, now)
    if run.expected_duration_s is not None and done < run.expected_duration_s:
        return run.expected_duration_s - done
    return done


def wall_time_near(node: NodeSnapshot, now: float, consolidate_after_s: float) -> bool:
    return node.time_limit_at is not None and node.time_limit_at - now <= consolidate_after_s


def lost_node_seconds(node: NodeSnapshot, now: float, consolidate_after_s: float) -> float:
    """The cost of emptying the node now; also the order in which nodes are emptied."""
    if wall_time_near(node, now, consolidate_after_s):
        return 0.0
    return sum(r.slots * elapsed_s(r, now) for r in node.runs) / max(1, node.slots_total)


def saved_node_seconds(node: NodeSnapshot, now: float, grace_period_s: float) -> float:
    longest = max((remaining_s(r, now) for r in node.runs), default=0.0)
    saved = longest - grace_period_s
    if node.time_limit_at is not None:
        saved = min(saved, node.time_limit_at - now)
    return max(0.0, saved)


def destination_need_s(run: RunOnNode, now: float) -> float:
    """Wall time a destination must have left for the run: its expected duration when known
    (the move may restart it from scratch), else what we assume it still needs (elapsed)."""
    if run.expected_duration_s is not None:
        return run.expected_duration_s
    return elapsed_s(run, now)


def node_refusal(node: NodeSnapshot, settings: ClusterSettings, now: float) -> tuple[Refusal, str] | None:
    """Why this node must not be emptied now, from its runs alone (room is checked apart)."""
    for run in node.runs:
        if not run.movable:
            return Refusal.NOT_MOVABLE, f"{node.name}: run {run.gid} is movable: false"
    for run in node.runs:
        if run.moved_at is not None and now - run.moved_at < settings.move_cooldown_s:
            return Refusal.COOLDOWN, (f"{node.name}: run {run.gid} moved {now - run.moved_at:.0f} s ago "
                                      f"(move_cooldown {settings.move_cooldown_s:.0f} s)")
    lost = lost_node_seconds(node, now, settings.consolidate_after_s)
    saved = saved_node_seconds(node, now, settings.grace_period_s)
    if lost > saved:
        reason = Refusal.WAITING_FOR_RUNS if all(duration_known(r, now) for r in node.runs) else Refusal.LOSES_MORE
        return reason, f"{node.name}: a move would lose {lost:.0f} node-s to save {saved:.0f}"
    return None
