#!/usr/bin/env python3
"""Consolidation with checkpoints and durations against its targets, per seed (`juqueue simulate`).

The workload: 1,000 runs, lognormal durations (median 3600 s, sigma 1), 4 slots per node, max_jobs
50, queue wait exponential with a 30-minute mean, wall time 86400 s, restart cost 300 s, hourly
checkpoints; seeds 1-6; policies idle, original, aggressive. Three variants: as is; with
--checkpoint-on-term; with --duration-hints exact. Per seed and policy: efficiency (lower bound /
node-hours), makespan / idle's, floor_ratio (floor / node-hours). Targets (aggressive): as is,
>= original on every seed, mean efficiency >= 0.935, makespan <= 1.05 x idle on every seed;
with --checkpoint-on-term floor_ratio >= 0.99 on every seed; with --duration-hints exact mean
efficiency >= 0.97 with makespan <= 1.05 x idle. Not a test: it never asserts and exits 0.

Usage: python bench/simulate_targets.py [--seeds 1,2,3,4,5,6] [--variant NAME ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from juqueue.simulate.engine import simulate  # noqa: E402
from juqueue.simulate.inputs import SimulateOptions, resolve  # noqa: E402
from juqueue.simulate.report import report_json  # noqa: E402

BASE = dict(runs="1000", duration_dist="lognormal:median=3600,sigma=1", num_slots="4", max_jobs="50",
            queue_wait_dist="exp:mean=1800", wall_time="86400", restart_cost="300", checkpoint_interval="3600",
            policies=("idle", "original", "aggressive"))
VARIANTS = {"hourly checkpoints": {}, "--checkpoint-on-term": {"checkpoint_on_term": True},
            "--duration-hints exact": {"duration_hints": "exact"}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="1,2,3,4,5,6")
    parser.add_argument("--variant", action="append", choices=list(VARIANTS), help="only these (repeatable)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    for variant, extra in VARIANTS.items():
        if args.variant and variant not in args.variant:
            continue
        started = time.perf_counter()
        rows = []
        for seed in seeds:
            inputs = resolve(SimulateOptions(**BASE, **extra, seed=str(seed)))  # type: ignore[arg-type]
            report = report_json(inputs.workload, inputs.conditions,
                                 simulate(inputs.workload, inputs.conditions, inputs.policies, inputs.seed), inputs.seed)
            rows.append((seed, {p["name"]: p for p in report["policies"]}))
        print(f"\n{variant} (seeds {args.seeds}; {time.perf_counter() - started:.0f} s)")
        print("| seed | idle eff | original eff | original makespan/idle | original floor | aggressive eff "
              "| aggressive makespan/idle | aggressive floor | aggressive moves |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for seed, p in rows:
            idle = p["idle"]["makespan_s"]
            print(f"| {seed} | {p['idle']['efficiency']:.4f} | {p['original']['efficiency']:.4f} | "
                  f"{p['original']['makespan_s'] / idle:.3f} | {p['original']['floor_ratio']:.4f} | "
                  f"{p['aggressive']['efficiency']:.4f} | {p['aggressive']['makespan_s'] / idle:.3f} | "
                  f"{p['aggressive']['floor_ratio']:.4f} | {p['aggressive']['moves']} |")
        mean = {name: statistics.fmean(p[name]["efficiency"] for _, p in rows) for name in ("idle", "original", "aggressive")}
        print(f"| mean | {mean['idle']:.4f} | {mean['original']:.4f} | | | {mean['aggressive']:.4f} | | | |")
        worst = max(p["aggressive"]["makespan_s"] / p["idle"]["makespan_s"] for _, p in rows)
        floor = min(p["aggressive"]["floor_ratio"] for _, p in rows)
        beats = all(p["aggressive"]["efficiency"] >= p["original"]["efficiency"] for _, p in rows)
        print(f"aggressive: mean efficiency {mean['aggressive']:.4f}, worst makespan {worst:.3f} x idle, "
              f"lowest floor_ratio {floor:.4f}, >= original on every seed: {'yes' if beats else 'no'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
