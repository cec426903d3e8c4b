"""Node-hour budgets: the gate, the projection, and where caps come from in definitions."""

from __future__ import annotations

import textwrap
from pathlib import Path

from juqueue.definitions.clusters import load_clusters
from juqueue.definitions.evaluate import evaluate_def_dir
from juqueue.policy.budget import budget_reason, node_start_fits, projected_node_hours


def test_a_node_starts_only_if_spent_live_and_new_fit_under_the_cap() -> None:
    assert node_start_fits(0, 0, 3600, None)
    assert node_start_fits(1800, 1800, 3600, 2.0)  # exactly 2 h
    assert not node_start_fits(1801, 1800, 3600, 2.0)
    assert not node_start_fits(0, 0, 600, 0.1)  # a 10-minute job cannot fit 6 minutes
    assert budget_reason(1800, 2.0) == "node-hour budget reached (spent 0.50 of 2)"


def test_projection_is_unknown_when_a_run_has_no_estimate() -> None:
    assert projected_node_hours([3600, 3600, 7200, 0], num_slots=4) == 1.0
    assert projected_node_hours([3600, None], num_slots=4) is None
    assert projected_node_hours([], num_slots=4) == 0.0


def test_caps_in_clusters_yaml_and_experiment_files(tmp_path: Path) -> None:
    (tmp_path / "clusters.yaml").write_text("c: {type: local, budget_node_hours: 12.5, budget_step: 600}\n")
    spec = load_clusters(tmp_path / "clusters.yaml")["c"]
    assert (spec.budget_node_hours, spec.budget_step) == (12.5, 600)
    (tmp_path / "e.yaml").write_text(textwrap.dedent("""\
        experiment: e
        cluster: c
        budget_node_hours: 3
        runs: [{id: r, cmd: [true]}]
        """))
    (tmp_path / "bad.yaml").write_text("experiment: bad\ncluster: c\nbudget_node_hours: -1\nruns: [{id: r, cmd: [true]}]\n")
    res = evaluate_def_dir(tmp_path, {"c"})
    assert res.budgets == {"e": 3.0}
    (err,) = res.errors
    assert err.file == "bad.yaml" and err.field == "budget_node_hours"


def test_experimentdef_budget_and_hold_attributes(tmp_path: Path) -> None:
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "p.py").write_text(textwrap.dedent("""\
        from juqueue import ExperimentDef, RunDef

        class Experiment(ExperimentDef):
            name = "p"
            budget_node_hours = 7
            hold = True

            @property
            def runs(self):
                return [RunDef(id="a", experiment_name="p", cluster="c", cmd=["true"])]
        """))
    res = evaluate_def_dir(tmp_path, {"c"})
    assert res.errors == [] and res.budgets == {"p": 7.0}
    assert [r.hold for r in res.runs] == [True]
