"""`throughput.py --profile DIR`: py-spy on the serve process and one worker while the N runs go through."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path


def start_profilers(targets: list[tuple[str, int]], out_dir: Path, log) -> list[tuple[str, subprocess.Popen, Path]]:
    """py-spy on each (name, pid) while the N runs go through (--profile DIR)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        log("--profile: py-spy not found (pip install py-spy); not profiling")
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    spies = []
    for name, pid in targets:
        path = out_dir / f"{name}.txt"
        proc = subprocess.Popen([spy, "record", "--format", "raw", "--rate", "100", "--nonblocking", "--pid", str(pid),
                                 "--output", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        spies.append((name, proc, path))
    time.sleep(1.0)  # let py-spy attach before the runs arrive
    return spies


def stop_profilers(spies: list[tuple[str, subprocess.Popen, Path]]) -> dict[str, Path]:
    done = {}
    for name, proc, path in spies:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if path.exists():
            done[name] = path
    return done


def summarize_profile(path: Path, top: int = 12) -> list[str]:
    """Top functions by self and by inclusive samples from py-spy's raw (collapsed stack) output."""
    self_c: dict[str, int] = {}
    incl_c: dict[str, int] = {}
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        c = int(count)
        total += c
        frames = [f.rsplit(":", 1)[0] + ")" if f.endswith(")") and ":" in f else f for f in stack.split(";")]
        frames = [f.replace(str(Path(sys.prefix)), "<venv>") for f in frames]
        self_c[frames[-1]] = self_c.get(frames[-1], 0) + c
        for f in set(frames):
            incl_c[f] = incl_c.get(f, 0) + c
    if not total:
        return ["  (no samples)"]
    lines = [f"  {total} samples at 100 Hz (~{total / 100:.1f} CPU-s across threads)", "  self:"]
    lines += [f"    {c * 100 / total:5.1f}%  {f}" for f, c in sorted(self_c.items(), key=lambda kv: -kv[1])[:top]]
    lines.append("  inclusive:")
    lines += [f"    {c * 100 / total:5.1f}%  {f}" for f, c in sorted(incl_c.items(), key=lambda kv: -kv[1])[:top * 2]]
    return lines


