"""The simulator's figures as JSON (a stable interface) and as a table for people."""

from __future__ import annotations

from juqueue.simulate.floor import floor_node_seconds
from juqueue.simulate.state import PolicyResult
from juqueue.simulate.workload import Conditions, Workload


def efficiency(lower_bound_s: float, result: PolicyResult) -> float:
    """Lower bound / billed: 1.0 is a perfect packing of the finished sweep."""
    return lower_bound_s / result.node_seconds if result.node_seconds > 0 else 0.0


def report_json(workload: Workload, conditions: Conditions, results: list[PolicyResult], seed: int) -> dict:
    """`{"floor_node_hours": ..., "lower_bound_node_hours": ..., "policies": [{"name", "node_hours",
    "efficiency", "floor_ratio", "makespan_s", "moves", "lost_hours", ...}], ...}`; hours are
    node-hours (lost: slot-hours). `wall_time_gap_*_s`: from a wall-time drain to the run's next
    attempt (null: no run was drained). The floor: `juqueue.simulate.floor`."""
    lower = workload.work_s / conditions.num_slots
    floor = floor_node_seconds(workload, conditions)
    return {
        "floor_node_hours": round(floor / 3600, 4),
        "lower_bound_node_hours": round(lower / 3600, 4),
        "policies": [
            {"name": r.name, "node_hours": round(r.node_seconds / 3600, 4), "efficiency": round(efficiency(lower, r), 4),
             "floor_ratio": round(efficiency(floor, r), 4),
             "makespan_s": round(r.makespan_s, 3), "moves": r.moves, "lost_hours": round(r.lost_seconds / 3600, 4),
             "max_nodes": r.max_nodes, "node_starts": r.node_starts, "nodes_emptied": r.nodes_emptied,
             "wall_time_interruptions": r.wall_time_interruptions, "replacements": r.replacements,
             "wall_time_gap_mean_s": _rounded(r.wall_time_gap_mean_s),
             "wall_time_gap_max_s": _rounded(r.wall_time_gap_max_s if r.wall_time_gaps else None),
             "busy_slot_hours": round(r.busy_slot_seconds / 3600, 4)}
            for r in results
        ],
        "runs": len(workload.runs),
        "run_hours": round(workload.work_s / 3600, 4),
        "cluster": conditions.name,
        "num_slots": conditions.num_slots,
        "max_jobs": conditions.max_jobs,
        "wall_time_s": conditions.wall_time_s,
        "replacement_lead_s": conditions.replacement_lead_s,
        "seed": seed,
        "note": workload.note or None,
    }


def report_table(workload: Workload, conditions: Conditions, results: list[PolicyResult]) -> str:
    """One line per policy; with wall time also its replacements and the wall-time gap (mean/max s)."""
    lower = workload.work_s / conditions.num_slots
    floor = floor_node_seconds(workload, conditions)
    wall = conditions.wall_time_s is not None
    head = (f"{'policy':<28} {'node-hours':>11} {'efficiency':>10} {'floor':>6} {'makespan':>10} {'moves':>6} "
            f"{'lost h':>8} {'max nodes':>9}")
    lines = [head + (f" {'replacements':>12} {'wall gap s':>13}" if wall else "")]
    digits = 2 if lower >= 36000 else 4  # a sweep of seconds still shows figures
    for r in results:
        line = (f"{r.name:<28} {r.node_seconds / 3600:>11.{digits}f} {efficiency(lower, r):>10.3f} "
                f"{efficiency(floor, r):>6.3f} {_clock(r.makespan_s):>10} {r.moves:>6} {r.lost_seconds / 3600:>8.{digits}f} {r.max_nodes:>9}")
        lines.append(line + (f" {r.replacements:>12} {_gap(r):>13}" if wall else ""))
    lines.append(f"lower bound: {lower / 3600:.{digits}f} node-hours ({workload.work_s / 3600:.{digits}f} run-hours of "
                 f"{len(workload.runs)} runs / {conditions.num_slots} slots per node); floor: {floor / 3600:.{digits}f} "
                 "node-hours (queue order, no queue wait, no restarts, perfect free packing)")
    return "\n".join(lines)


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


def _gap(r: PolicyResult) -> str:
    """mean/max seconds from a wall-time drain to the run's next start; - when none was drained."""
    mean = r.wall_time_gap_mean_s
    return "-" if mean is None else f"{mean:.0f}/{r.wall_time_gap_max_s:.0f}"


def _clock(seconds: float) -> str:
    """12:05:09 or 2d03:04:05: long sweeps stay readable."""
    whole = int(round(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}d{text}" if days else text
