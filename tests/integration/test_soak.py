"""The chaos soak CI runs: three minutes of every local fault at once (`juqueue-soak`), with a fixed
seed; the verdict comes from the runs' own journals and the store (juqueue/soak/checker.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.integration
@pytest.mark.slow(330)
@pytest.mark.timeout(1500)
def test_a_three_minute_local_soak_with_every_fault_holds(tmp_path):
    soak_dir = tmp_path / "soak"
    proc = subprocess.run([sys.executable, "-m", "juqueue.soak.cli", "--minutes", "3", "--seed", "1", "--dir", str(soak_dir)],
                          capture_output=True, text=True, timeout=1200)
    out = proc.stdout + proc.stderr
    print(out[-6000:])
    assert "faults injected:" in out
    assert proc.returncode == 0, f"the soak found violations (or could not run):\n{out[-6000:]}\nsee {soak_dir}"
    # the checker reads a finished soak again and says the same
    again = subprocess.run([sys.executable, "-m", "juqueue.soak.cli", "--check", str(soak_dir)], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "verdict: held" in again.stdout, again.stdout + again.stderr
