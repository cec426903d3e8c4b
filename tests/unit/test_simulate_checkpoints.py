"""The simulator's checkpoint-aware figures: the floor, checkpoint_on_term, duration hints and
the new flags (`juqueue simulate`)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from juqueue.cli import app
from juqueue.policy.consolidation_model import ConsolidationMode
from juqueue.policy.scaling import ScalingPolicy
from juqueue.simulate.distributions import SimulationInputError
from juqueue.simulate.engine import Simulation
from juqueue.simulate.floor import floor_node_seconds
from juqueue.simulate.inputs import SimulateOptions, resolve
from juqueue.simulate.report import report_json
from juqueue.simulate.state import PolicyVariant
from juqueue.simulate.workload import Conditions, SimRun, Workload

AGGRESSIVE = PolicyVariant("aggressive", ConsolidationMode.AGGRESSIVE, ScalingPolicy.MAXIMIZE_RUNNING)


def _runs(*durations: float, **kw) -> Workload:
    return Workload(tuple(SimRun(f"e@r{i}", d, **kw) for i, d in enumerate(durations)))


def test_floor_by_hand():
    """2 nodes x 2 slots. Runs of 100, 100, 100, 300, 50 s in queue order: the first four start at
    0, the fifth at 100 on the first freed slot. Live slots: 4 over 0-100 (2 nodes), 2 over
    100-150 (1 node), 1 over 150-300 (1 node): 200 + 50 + 150 = 400 node-s."""
    c = Conditions(num_slots=2, max_jobs=2)
    assert floor_node_seconds(_runs(100, 100, 100, 300, 50), c) == 400.0
    # arrivals and dependencies are waited for; a 2-slot run takes two slots
    w = Workload((SimRun("e@a", 100, slots=2), SimRun("e@b", 50, arrival_s=200), SimRun("e@c", 10, depends_on=("e@a",))))
    # a: 0-100 (2 slots: 1 node); c: 100-110 (1 node); b: 200-250 (1 node)
    assert floor_node_seconds(w, c) == 100 + 10 + 50


def test_json_and_table_report_the_floor():
    w = _runs(100, 100, 100, 300)
    c = Conditions(num_slots=2, max_jobs=2)
    result = Simulation(w, c, AGGRESSIVE).run()
    out = report_json(w, c, [result], seed=1)
    assert list(out)[0] == "floor_node_hours" and out["floor_node_hours"] == round(400 / 3600, 4)
    assert out["policies"][0]["floor_ratio"] == round(400 / result.node_seconds, 4)
    table = CliRunner().invoke(app, ["simulate", "--runs", "8", "--duration-dist", "fixed:100", "--num-slots", "2",
                                     "--max-jobs", "2", "--policy", "aggressive"])
    assert table.exit_code == 0 and " floor " in table.output.splitlines()[0] and "floor:" in table.output


def test_checkpoint_on_term_loses_nothing_but_restart_cost():
    """One 250 s run on 1-slot nodes living 100 s, restarts cost 10 s, no periodic checkpoints:
    with checkpoint_on_term each wall-time stop keeps all progress. 0-100: 100 done; 100-200:
    10 + 90 (190 done); 200-270: 10 + 60."""
    w = _runs(250)
    c = Conditions(num_slots=1, max_jobs=1, wall_time_s=100, restart_cost_s=10, checkpoint_on_term=True)
    r = Simulation(w, c, AGGRESSIVE).run()
    assert r.lost_seconds == 0 and r.makespan_s == 270.0 and r.wall_time_interruptions == 2
    with pytest.raises(SimulationInputError, match="checkpoint-interval"):  # without it the run never ends
        Simulation(w, Conditions(num_slots=1, max_jobs=1, wall_time_s=100), AGGRESSIVE)


def test_moves_lose_work_since_the_last_checkpoint():
    """Two 2-slot nodes each left with one long run; checkpoints every 100 s, restart 7 s: the
    moved run loses its progress since its last checkpoint and redoes it after its restart."""
    w = _runs(5, 1000, 5, 1000)
    c = Conditions(num_slots=2, max_jobs=2, consolidate_after_s=10, checkpoint_interval_s=100, restart_cost_s=7,
                   move_cooldown_s=0)
    r = Simulation(w, c, AGGRESSIVE).run()
    assert r.moves == 1
    assert 0 < r.lost_seconds < 100  # its progress since its last checkpoint, not its attempt
    assert r.makespan_s == pytest.approx(1000 + r.lost_seconds + 7)  # redone after its restart


def test_duration_hints_and_move_cooldown_flags():
    base = dict(runs="20", duration_dist="lognormal:median=100,sigma=1", num_slots="2", max_jobs="3")
    none = resolve(SimulateOptions(**base, duration_hints="none"))
    assert all(r.expected_s is None for r in none.workload.runs)
    exact = resolve(SimulateOptions(**base, duration_hints="exact", move_cooldown="0", checkpoint_on_term=True))
    assert all(r.expected_s == r.duration_s for r in exact.workload.runs)
    assert exact.conditions.move_cooldown_s == 0 and exact.conditions.checkpoint_on_term
    noisy = resolve(SimulateOptions(**base, duration_hints="noisy:sigma=0.5"))
    ratios = [r.expected_s / r.duration_s for r in noisy.workload.runs]
    assert all(r > 0 for r in ratios) and len(set(ratios)) > 1
    assert resolve(SimulateOptions(**base, duration_hints="noisy:sigma=0")).workload.runs == exact.workload.runs
    for bad in ("sometimes", "noisy:sigma=-1", "noisy:mu=1"):
        with pytest.raises(SimulationInputError, match="--duration-hints"):
            resolve(SimulateOptions(**base, duration_hints=bad))
    with pytest.raises(SimulationInputError, match="--move-cooldown"):
        resolve(SimulateOptions(**base, move_cooldown="-3"))


def test_cluster_checkpoint_defaults_reach_the_simulation(tmp_path):
    (tmp_path / "clusters.yaml").write_text("c: {type: slurm, num_slots: 2, max_jobs: 2, checkpoint_interval: 600, "
                                            "restart_cost: 30, checkpoint_on_term: true}\n")
    out = resolve(SimulateOptions(def_dir=tmp_path, cluster="c", runs="4", duration_dist="fixed:100"))
    c = out.conditions
    assert (c.checkpoint_interval_s, c.restart_cost_s, c.checkpoint_on_term) == (600.0, 30.0, True)
    over = resolve(SimulateOptions(def_dir=tmp_path, cluster="c", runs="4", duration_dist="fixed:100",
                                   checkpoint_interval="60", restart_cost="0"))
    assert (over.conditions.checkpoint_interval_s, over.conditions.restart_cost_s) == (60.0, 0.0)
    result = CliRunner().invoke(app, ["simulate", "--def-dir", str(tmp_path), "--cluster", "c", "--runs", "4",
                                      "--duration-dist", "fixed:100", "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["floor_node_hours"] > 0
