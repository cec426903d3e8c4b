"""`juqueue-soak`: a chaos soak of a real JuQueue, or the check of a finished one.

    juqueue-soak --minutes 3 --seed 1 [--slurm] [--dir DIR]   soak, then print faults and verdict
    juqueue-soak --check DIR                                  the verdict of a finished soak again

Exit code 0: every invariant held; 1: a violation (each printed); 2: the soak could not run.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

from juqueue.soak import checker, evidence


def verdict(soak_dir: Path) -> int:
    ev = evidence.load(soak_dir)
    injected = ev.meta.get("injected", {})
    print(f"soak {soak_dir}: seed {ev.meta.get('seed')}, {ev.meta.get('minutes')} min, "
          f"{'slurm' if ev.meta.get('slurm') else 'local'}, {len(ev.runs)} runs, serve started {ev.meta.get('serve_starts')} times")
    print("faults injected: " + (", ".join(f"{k} {v}" for k, v in sorted(injected.items())) or "none"))
    if ev.meta.get("nothing_to_hit"):
        print("scheduled but nothing to hit: " + ", ".join(f"{k} {v}" for k, v in sorted(ev.meta["nothing_to_hit"].items())))
    if ev.meta.get("disk_phases") != "run":
        print(f"disk-full phases skipped: {ev.meta.get('disk_phases')}")
    for err in ev.meta.get("injector_errors", []):
        print(f"injector error (not a violation by itself): {err}")
    statuses: dict[str, int] = {}
    for run in ev.runs.values():
        statuses[run["status"]] = statuses.get(run["status"], 0) + 1
    print("runs: " + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())))
    causes: dict[str, int] = {}
    for attempts in ev.attempts.values():
        for a in attempts:
            if a["end_reason"] == "interrupted":
                cause = a["stop_reason"] or (a["interrupted_by"] or "?").split(":")[0].split(" (")[0]
                causes[cause] = causes.get(cause, 0) + 1
    print("interrupted attempts by cause: " + (", ".join(f"{k} {v}" for k, v in sorted(causes.items())) or "none"))
    feed = ev.feed.get("counts", {})
    print(f"feed client: {feed.get('messages', 0)} messages, {feed.get('resyncs', 0)} resyncs, {feed.get('connects', 0)} connections")
    violations = checker.check(ev)
    for v in violations:
        print(f"VIOLATION: {v}")
    print(f"verdict: {'FAILED, ' + str(len(violations)) + ' violations' if violations else 'held'}")
    return 1 if violations else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="juqueue-soak", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=3.0, help="length of the fault schedule (default 3)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the fault schedule and workload (default 1)")
    ap.add_argument("--slurm", action="store_true", help="run on the test SLURM (scancel and wall time too)")
    ap.add_argument("--partition", default="debug", help="SLURM partition with --slurm (default debug)")
    ap.add_argument("--no-disk", action="store_true", help="skip the disk-full phases")
    ap.add_argument("--dir", type=Path, help="soak directory (default: a new one under the current directory)")
    ap.add_argument("--check", type=Path, metavar="DIR", help="only check a finished soak directory")
    args = ap.parse_args(argv)
    if args.check:
        try:
            return verdict(args.check)
        except (FileNotFoundError, OSError) as exc:
            print(f"juqueue-soak: {exc}", file=sys.stderr)
            return 2
    from juqueue.soak.runner import Soak, SoakOptions

    soak_dir = args.dir or Path(tempfile.mkdtemp(prefix=f"soak-{args.seed}-{time.strftime('%Y%m%d-%H%M%S')}-", dir="."))
    soak_dir = soak_dir.resolve()
    soak_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    opts = SoakOptions(minutes=args.minutes, seed=args.seed, soak_dir=soak_dir, slurm=args.slurm,
                       partition=args.partition, disk=not args.no_disk)
    try:
        Soak(opts).run()
    except RuntimeError as exc:
        print(f"juqueue-soak: the soak could not run: {exc}", file=sys.stderr)
        return 2
    return verdict(soak_dir)


if __name__ == "__main__":
    sys.exit(main())
