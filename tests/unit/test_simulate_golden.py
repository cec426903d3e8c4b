"""`juqueue simulate --json` against golden files: speed work on the simulator (snapshots,
placement, consolidation planning) must not change a single figure where the policy is
unchanged. Small heavy-tailed sweeps (a few hundred runs) on a cluster that is full for a while,
then consolidates: seeds 1 and 2, every policy; one with a short wall time (drains and
replacements), one with 2-slot runs (the slot-exact placement path).

Golden files: tests/unit/golden/simulate_*.json. After an intended change of the policy, rewrite
them with JUQUEUE_UPDATE_GOLDEN=1 and say in the commit why the figures moved."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from juqueue.cli import app
from support.golden import assert_matches_golden

GOLDEN = Path(__file__).parent / "golden"
COMMON = ["--num-slots", "4", "--restart-cost", "300", "--checkpoint-interval", "3600",
          "--queue-wait-dist", "exp:mean=1800", "--json"]
CASES = {
    # name -> arguments besides COMMON and --seed
    "tail": ["--runs", "300", "--duration-dist", "lognormal:median=3600,sigma=1", "--max-jobs", "15",
             "--wall-time", "86400"],
    "walltime": ["--runs", "200", "--duration-dist", "lognormal:median=3600,sigma=1", "--max-jobs", "10",
                 "--wall-time", "21600", "--policy", "idle", "--policy", "original", "--policy", "aggressive"],
}


def _multi_slot_csv(path: Path) -> Path:
    """120 runs, every fifth needs 2 slots; durations spread like a heavy tail (deterministic)."""
    lines = ["id,duration,slots"]
    for i in range(120):
        lines.append(f"r{i:03d},{600 + (i * 7919) % 23 * 900 + (i % 11) ** 3 * 40},{2 if i % 5 == 0 else 1}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _simulate(args: list[str]) -> str:
    result = CliRunner().invoke(app, ["simulate", *args])
    assert result.exit_code == 0, result.output
    return json.dumps(json.loads(result.output), indent=1, sort_keys=True) + "\n"


def _check(name: str, got: str) -> None:
    golden = GOLDEN / f"simulate_{name}.json"
    assert_matches_golden(got, golden)


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("case", sorted(CASES))
def test_simulate_json_matches_golden_file(case: str, seed: int) -> None:
    _check(f"{case}_seed{seed}", _simulate([*CASES[case], *COMMON, "--seed", str(seed)]))


@pytest.mark.parametrize("seed", [1, 2])
def test_simulate_multi_slot_json_matches_golden_file(tmp_path: Path, seed: int) -> None:
    csv = _multi_slot_csv(tmp_path / "runs.csv")
    _check(f"multislot_seed{seed}", _simulate(["--durations", str(csv), "--max-jobs", "8", *COMMON,
                                               "--seed", str(seed)]))
