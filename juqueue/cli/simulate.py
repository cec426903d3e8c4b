"""`juqueue simulate`: price a sweep per policy before spending an hour of it (no server needed).

The simulation itself is `juqueue.simulate`, imported when the command runs (so that other
commands, and `--help`, do not load it). Bad input is one line on stderr and exit code 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from juqueue.cli.plumbing import fail

WORKLOAD, CLUSTER, CONDITIONS, OUTPUT = "Workload", "Cluster", "Conditions", "Output"
S = "S"  # seconds, or HH:MM:SS


def simulate(
    def_dir: Annotated[Optional[Path], typer.Option("--def-dir", help="Definition dir: its clusters.yaml, and its runs with their `duration:` unless another workload is given.", rich_help_panel=WORKLOAD)] = None,
    cluster: Annotated[Optional[str], typer.Option("--cluster", help="The cluster (of clusters.yaml, or of the work dir's runs); default: the one the runs use.", rich_help_panel=WORKLOAD)] = None,
    from_work_dir: Annotated[Optional[Path], typer.Option("--from-work-dir", help="Replay a work dir's recorded attempts (durations, arrivals, node start latencies); its store is opened read-only.", rich_help_panel=WORKLOAD)] = None,
    durations: Annotated[Optional[Path], typer.Option("--durations", help="CSV of runs: a `duration` column (and optional id, expected, arrival, slots, movable, experiment), or one duration per line.", rich_help_panel=WORKLOAD)] = None,
    runs: Annotated[Optional[str], typer.Option("--runs", metavar="N", help="A generated sweep of N runs (with --duration-dist).", rich_help_panel=WORKLOAD)] = None,
    duration_dist: Annotated[Optional[str], typer.Option("--duration-dist", metavar="D", help="fixed:S, uniform:lo=S,hi=S or lognormal:median=S,sigma=X (the policy is not told the durations).", rich_help_panel=WORKLOAD)] = None,
    default_duration: Annotated[Optional[str], typer.Option("--default-duration", metavar=S, help="Def-dir runs without `duration:` take this (else they are an error).", rich_help_panel=WORKLOAD)] = None,
    num_slots: Annotated[Optional[str], typer.Option("--num-slots", metavar="K", help="Slots per node (without --def-dir; overrides clusters.yaml).", rich_help_panel=CLUSTER)] = None,
    max_jobs: Annotated[Optional[str], typer.Option("--max-jobs", metavar="M", help="Nodes at most (without --def-dir; overrides clusters.yaml).", rich_help_panel=CLUSTER)] = None,
    queue_wait_dist: Annotated[Optional[str], typer.Option("--queue-wait-dist", metavar="D", help="A submitted node's wait in the scheduler's queue (bills nothing): exp:mean=S or fixed:S. Default 0 (or the recorded latencies).", rich_help_panel=CONDITIONS)] = None,
    wall_time: Annotated[Optional[str], typer.Option("--wall-time", metavar=S, help="Node wall time (default: a slurm cluster's `time`, else none); runs are interrupted signal_lead before it.", rich_help_panel=CONDITIONS)] = None,
    restart_cost: Annotated[Optional[str], typer.Option("--restart-cost", metavar=S, help="Seconds a restarted attempt spends before it makes progress (default: the cluster's restart_cost, 0).", rich_help_panel=CONDITIONS)] = None,
    checkpoint_interval: Annotated[Optional[str], typer.Option("--checkpoint-interval", metavar=S, help="Runs checkpoint every S of progress; work since the last checkpoint is lost on a move or wall-time interruption (0: nothing lost; default: the cluster's checkpoint_interval, else no checkpoints: the whole attempt is lost).", rich_help_panel=CONDITIONS)] = None,
    checkpoint_on_term: Annotated[bool, typer.Option("--checkpoint-on-term", help="Runs save their state on SIGTERM: a move or wall-time stop loses nothing but the restart cost (default: the cluster's checkpoint_on_term).", rich_help_panel=CONDITIONS)] = False,
    duration_hints: Annotated[Optional[str], typer.Option("--duration-hints", metavar="H", help="What the policy is told of each run's duration (its `duration`): none, exact, or noisy:sigma=X (times a lognormal error of median 1). Default: what the workload says.", rich_help_panel=CONDITIONS)] = None,
    move_cooldown: Annotated[Optional[str], typer.Option("--move-cooldown", metavar=S, help="Overrides the cluster's move_cooldown.", rich_help_panel=CONDITIONS)] = None,
    consolidate_after: Annotated[Optional[str], typer.Option("--consolidate-after", metavar=S, help="Overrides the cluster's consolidate_after.", rich_help_panel=CONDITIONS)] = None,
    tick: Annotated[Optional[str], typer.Option("--tick", metavar=S, help="The controller's tick (moves and idle timeouts are decided on ticks; default 2).", rich_help_panel=CONDITIONS)] = None,
    replacement_lead: Annotated[Optional[str], typer.Option("--replacement-lead", metavar=S, help="With wall time: a node whose runs outlive its wall-time warning gets a replacement node S before it, for the drained runs (default: the cluster's replacement_lead, 600; 0: never).", rich_help_panel=CONDITIONS)] = None,
    seed: Annotated[Optional[str], typer.Option("--seed", metavar="N", help="Seed of generated durations and queue waits (default 1).", rich_help_panel=CONDITIONS)] = None,
    policy: Annotated[Optional[list[str]], typer.Option("--policy", help="Simulate only this policy (repeatable): idle, original, aggressive, aggressive+<scaling policy>.", rich_help_panel=OUTPUT)] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print {\"floor_node_hours\", \"lower_bound_node_hours\", \"policies\": [{\"name\", \"node_hours\", \"efficiency\", \"floor_ratio\", \"makespan_s\", \"moves\", \"lost_hours\", \"replacements\", \"wall_time_gap_mean_s\", ...}]}.", rich_help_panel=OUTPUT)] = False,
    plot: Annotated[Optional[Path], typer.Option("--plot", metavar="FILE.png", help="Draw nodes held and slots busy over time per policy (needs the extra .[plot]: matplotlib).", rich_help_panel=OUTPUT)] = None,
) -> None:
    """Simulate a sweep under every policy (the controller's own policy functions) and compare node-hours billed."""
    # imported here, not at the top, for start-up speed: every other command loads this module
    from juqueue.simulate.distributions import SimulationInputError
    from juqueue.simulate.engine import simulate as run_all
    from juqueue.simulate.inputs import SimulateOptions, resolve
    from juqueue.simulate.report import report_json, report_table

    options = SimulateOptions(def_dir=def_dir, cluster=cluster, from_work_dir=from_work_dir, durations=durations,
                              runs=runs, duration_dist=duration_dist, default_duration=default_duration,
                              num_slots=num_slots, max_jobs=max_jobs, queue_wait_dist=queue_wait_dist,
                              wall_time=wall_time, restart_cost=restart_cost, checkpoint_interval=checkpoint_interval,
                              checkpoint_on_term=checkpoint_on_term, duration_hints=duration_hints,
                              move_cooldown=move_cooldown,
                              consolidate_after=consolidate_after, tick=tick, replacement_lead=replacement_lead, seed=seed,
                              policies=tuple(policy or ()))
    try:
        if plot is not None:
            from juqueue.simulate.plot import require_matplotlib

            require_matplotlib()
        inputs = resolve(options)
        results = run_all(inputs.workload, inputs.conditions, inputs.policies, inputs.seed, record_series=plot is not None)
        if plot is not None:
            from juqueue.simulate.plot import plot_series

            plot_series(results, inputs.conditions.num_slots, plot,
                        f"{len(inputs.workload.runs)} runs, {inputs.conditions.num_slots} slots x {inputs.conditions.max_jobs} nodes")
    except SimulationInputError as exc:
        fail(str(exc))
    if json_out:
        sys.stdout.write(json.dumps(report_json(inputs.workload, inputs.conditions, results, inputs.seed), indent=2) + "\n")
        return
    typer.echo(report_table(inputs.workload, inputs.conditions, results))
    if inputs.workload.note:
        typer.echo(f"note: {inputs.workload.note}")
    if plot is not None:
        typer.echo(f"plot: {plot}")
