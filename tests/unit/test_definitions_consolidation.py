"""Definition keys consolidation and scaling read: per cluster (clusters.yaml) and per run
(YAML field and RunDef keyword); bad values are one error naming file, cluster or run, and key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from juqueue.definitions.clusters import load_clusters
from juqueue.definitions.evaluate import evaluate_def_dir
from juqueue.definitions.models import RunSpec
from juqueue.errors import ConfigError
from juqueue.policy.scaling import ScalingPolicy

CLUSTERS = {"local"}


def _write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_cluster_defaults_are_aggressive_maximize_running(tmp_path):
    c = load_clusters(_write(tmp_path, "clusters.yaml", "c: {type: local, num_slots: 4, max_jobs: 2}\n"))["c"]
    assert c.consolidation == "aggressive" and c.consolidate_after == 60 and c.move_cooldown == 300
    assert c.scaling_policy is ScalingPolicy.MAXIMIZE_RUNNING


def test_cluster_keys_parse(tmp_path):
    c = load_clusters(_write(tmp_path, "clusters.yaml", """\
        c:
          type: local
          consolidation: idle
          consolidate_after: "00:02:00"
          move_cooldown: 600
          scaling_policy: min_saturation
          min_saturation: 0.25
        """))["c"]
    assert (c.consolidation, c.consolidate_after, c.move_cooldown) == ("idle", 120.0, 600.0)
    assert c.scaling_policy is ScalingPolicy.MIN_SATURATION and c.min_saturation == 0.25


@pytest.mark.parametrize("key, value", [
    ("consolidation", "sometimes"), ("consolidate_after", -1), ("move_cooldown", "soon"),
    ("scaling_policy", "maximize_everything"), ("min_saturation", 1.5),
])
def test_bad_cluster_values_name_file_cluster_and_key(tmp_path, key, value):
    path = _write(tmp_path, "clusters.yaml", f"c:\n  type: local\n  {key}: {value!r}\n")
    with pytest.raises(ConfigError) as err:
        load_clusters(path)
    text = str(err.value)
    assert str(path) in text and "cluster 'c'" in text and key in text, text


def test_yaml_runs_take_movable_and_duration(tmp_path):
    _write(tmp_path, "e.yaml", """\
        experiment: e
        cluster: local
        cmd: [true]
        duration: "01:00:00"
        runs:
          - {id: pinned, movable: false}
          - {id: short, duration: 90}
          - {id: default}
        """)
    res = evaluate_def_dir(tmp_path, CLUSTERS)
    assert res.errors == []
    by_id = {r.id: r for r in res.runs}
    assert (by_id["pinned"].movable, by_id["pinned"].duration) == (False, 3600.0)
    assert (by_id["short"].movable, by_id["short"].duration) == (True, 90.0)
    assert by_id["default"].duration == 3600.0


def test_bad_duration_names_file_run_and_key(tmp_path):
    _write(tmp_path, "e.yaml", "experiment: e\ncluster: local\ncmd: [true]\nruns: [{id: r, duration: 'an hour'}]\n")
    res = evaluate_def_dir(tmp_path, CLUSTERS)
    (err,) = res.errors
    assert err.file == "e.yaml" and err.run == "r" and "duration" in (err.field or "") and "'an hour'" in err.message


def test_rundef_keywords(tmp_path):
    _write(tmp_path, "experiments/p.py", """\
        from juqueue import ExperimentDef, RunDef

        class Experiment(ExperimentDef):
            name = "p"

            @property
            def runs(self):
                return [RunDef(id="a", experiment_name="p", cluster="local", cmd=["true"], movable=False, duration="00:10:00"),
                        RunDef(id="b", experiment_name="p", cluster="local", cmd=["true"])]
        """)
    res = evaluate_def_dir(tmp_path, CLUSTERS)
    assert res.errors == []
    by_id = {r.id: r for r in res.runs}
    assert (by_id["a"].movable, by_id["a"].duration) == (False, 600.0)
    assert (by_id["b"].movable, by_id["b"].duration) == (True, None)


def test_fingerprint_of_runs_without_the_new_keys_is_unchanged():
    """Stores written before these keys existed must not see every run as redefined."""
    spec = RunSpec(experiment="e", id="r", cluster="local", cmd=["true"])
    assert spec.fingerprint() == RunSpec(experiment="e", id="r", cluster="local", cmd=["true"], movable=True).fingerprint()
    assert spec.fingerprint() != RunSpec(experiment="e", id="r", cluster="local", cmd=["true"], movable=False).fingerprint()


def test_checkpoint_keys_per_experiment_run_and_cluster(tmp_path):
    c = load_clusters(_write(tmp_path, "clusters.yaml", """\
        c: {type: local, checkpoint_interval: "01:00:00", restart_cost: 300, checkpoint_on_term: true}
        d: {type: local}
        """))
    assert (c["c"].checkpoint_interval, c["c"].restart_cost, c["c"].checkpoint_on_term) == (3600.0, 300.0, True)
    assert (c["d"].checkpoint_interval, c["d"].restart_cost, c["d"].checkpoint_on_term) == (None, 0.0, False)
    _write(tmp_path, "defs/e.yaml", """\
        experiment: e
        cluster: local
        cmd: [true]
        checkpoint_interval: 1800
        checkpoint_on_term: true
        runs:
          - {id: own, checkpoint_interval: "00:10:00", restart_cost: 60, checkpoint_on_term: false}
          - {id: inherits}
        """)
    _write(tmp_path, "defs/experiments/p.py", """\
        from juqueue import ExperimentDef, RunDef

        class Experiment(ExperimentDef):
            name = "p"
            restart_cost = "00:05:00"

            @property
            def runs(self):
                return [RunDef(id="a", experiment_name="p", cluster="local", cmd=["true"]),
                        RunDef(id="b", experiment_name="p", cluster="local", cmd=["true"], restart_cost=10,
                               checkpoint_interval=600)]
        """)
    res = evaluate_def_dir(tmp_path / "defs", CLUSTERS)
    assert res.errors == []
    by = {r.global_id: (r.checkpoint_interval, r.restart_cost, r.checkpoint_on_term) for r in res.runs}
    assert by == {"e@own": (600.0, 60.0, False), "e@inherits": (1800.0, None, True),
                  "p@a": (None, 300.0, None), "p@b": (600.0, 10.0, None)}
    # unset keys leave the fingerprint of older definitions unchanged
    plain = RunSpec(experiment="e", id="r", cluster="local", cmd=["true"])
    assert "checkpoint" not in str(plain.fingerprint()) and plain.fingerprint() == RunSpec(
        experiment="e", id="r", cluster="local", cmd=["true"], checkpoint_on_term=None).fingerprint()


@pytest.mark.parametrize("key, value", [("checkpoint_interval", "often"), ("restart_cost", -5),
                                        ("checkpoint_on_term", "maybe")])
def test_bad_checkpoint_keys_name_file_run_and_key(tmp_path, key, value):
    _write(tmp_path, "e.yaml", f"experiment: e\ncluster: local\ncmd: [true]\nruns: [{{id: r, {key}: {value!r}}}]\n")
    res = evaluate_def_dir(tmp_path, CLUSTERS)
    assert len(res.errors) == 1 and res.runs == []
    err = res.errors[0]
    assert err.file == "e.yaml" and key in (err.field or "") and key in str(err), str(err)
    path = _write(tmp_path, "clusters.yaml", f"c:\n  type: local\n  {key}: {value!r}\n")
    with pytest.raises(ConfigError) as exc:
        load_clusters(path)
    assert str(path) in str(exc.value) and key in str(exc.value)


def test_priority_per_run_and_experiment_yaml_and_python(tmp_path):
    _write(tmp_path, "defs/e.yaml", """\
        experiment: e
        cluster: local
        cmd: [true]
        priority: 2
        runs:
          - {id: own, priority: -1}
          - {id: inherits}
        """)
    _write(tmp_path, "defs/experiments/p.py", """\
        from juqueue import ExperimentDef, RunDef

        class Experiment(ExperimentDef):
            name = "p"
            priority = 5

            @property
            def runs(self):
                return [RunDef(id="a", experiment_name="p", cluster="local", cmd=["true"]),
                        RunDef(id="b", experiment_name="p", cluster="local", cmd=["true"], priority=1)]
        """)
    _write(tmp_path, "defs/plain.yaml", "experiment: plain\ncluster: local\ncmd: [true]\nruns: [{id: r}]\n")
    res = evaluate_def_dir(tmp_path / "defs", CLUSTERS)
    assert res.errors == []
    assert {r.global_id: r.priority for r in res.runs} == {"e@own": -1, "e@inherits": 2, "p@a": 5, "p@b": 1,
                                                           "plain@r": 0}
    plain = RunSpec(experiment="e", id="r", cluster="local", cmd=["true"])
    assert plain.fingerprint() == RunSpec(experiment="e", id="r", cluster="local", cmd=["true"], priority=0).fingerprint()
    _write(tmp_path, "bad/e.yaml", "experiment: e\ncluster: local\ncmd: [true]\nruns: [{id: r, priority: high}]\n")
    bad = evaluate_def_dir(tmp_path / "bad", CLUSTERS)
    assert len(bad.errors) == 1 and "priority" in str(bad.errors[0]) and bad.errors[0].file == "e.yaml"
