"""clusters.yaml: the original's format, our fields, dask-jobqueue aliases and errors."""

import textwrap
from pathlib import Path

import pytest

from juqueue.definitions.clusters import ClusterConfigWarning, load_clusters
from juqueue.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parents[2] / "example_defs"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "clusters.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_example_clusters():
    clusters = load_clusters(EXAMPLES / "clusters.yaml")
    local = clusters["local"]
    assert (local.type, local.num_slots, local.max_jobs, local.idle_timeout) == ("local", 4, 2, 5)


def test_original_clusters_yaml_loads(tmp_path):
    # the original repository's example_defs/clusters.yaml, verbatim
    path = write(tmp_path, """\
        example_local:
          type: local
          cores: 4
          memory: 2GB
          max_jobs: 6
          num_slots: 2
        example_local2:
          type: local
          cores: 4
          memory: 2GB
          max_jobs: 6
          num_slots: 2""")
    clusters = load_clusters(path)
    assert set(clusters) == {"example_local", "example_local2"}
    assert clusters["example_local"].cores == 4 and clusters["example_local"].memory == "2GB"


def test_scaling_policy_kept(tmp_path):
    path = write(tmp_path, "c:\n  type: local\n  num_slots: 1\n  max_jobs: 1\n  scaling_policy: maximize_running\n")
    assert load_clusters(path)["c"].scaling_policy == "maximize_running"


def test_slurm_aliases_and_ignored_keys(tmp_path):
    path = write(tmp_path, """\
        jureca:
          type: slurm
          num_slots: 4
          max_jobs: 3
          queue: dc-gpu
          project: jinm60
          walltime: "24:00:00"
          cores: 128
          memory: 500G
          job_extra: ["--gres=gpu:4"]
          env_extra: ["module load CUDA"]
          interface: ib0
          log_directory: ~/logs
          processes: 1
          death_timeout: 60
    """)
    with pytest.warns(ClusterConfigWarning) as record:
        c = load_clusters(path)["jureca"]
    warned = " ".join(str(w.message) for w in record)
    for key in ("interface", "log_directory", "processes", "death_timeout"):
        assert f"'{key}'" in warned
    assert (c.partition, c.account, c.time, c.cpus_per_task, c.memory) == ("dc-gpu", "jinm60", "24:00:00", 128, "500G")
    assert c.extra_directives == ["--gres=gpu:4"] and c.prologue == ["module load CUDA"]


def test_newer_dask_alias_names(tmp_path):
    path = write(tmp_path, "s:\n  type: slurm\n  job_extra_directives: ['--qos=x']\n  job_script_prologue: 'module load A'\n")
    c = load_clusters(path)["s"]
    assert c.extra_directives == ["--qos=x"] and c.prologue == ["module load A"]


def test_unknown_key_is_error(tmp_path):
    path = write(tmp_path, "c:\n  type: local\n  num_slotz: 2\n")
    with pytest.raises(ConfigError, match=r"clusters.yaml: cluster 'c': field 'num_slotz': unknown field"):
        load_clusters(path)


def test_alias_conflict(tmp_path):
    path = write(tmp_path, "s:\n  type: slurm\n  queue: a\n  partition: b\n")
    with pytest.raises(ConfigError, match="'partition'"):
        load_clusters(path)


def test_bad_values_name_field(tmp_path):
    with pytest.raises(ConfigError, match=r"cluster 'c': field 'num_slots'"):
        load_clusters(write(tmp_path, "c:\n  type: local\n  num_slots: 0\n"))
    with pytest.raises(ConfigError, match=r"field 'type'"):
        load_clusters(write(tmp_path, "c:\n  num_slots: 2\n"))
    with pytest.raises(ConfigError, match=r"unknown cluster type 'pbs'"):
        load_clusters(write(tmp_path, "c:\n  type: pbs\n"))


def test_signal_lead_checked(tmp_path):
    path = write(tmp_path, "s:\n  type: slurm\n  grace_period: 60\n  signal_lead: 100\n")
    with pytest.raises(ConfigError, match=r"field 'signal_lead'.*120"):
        load_clusters(path)
    ok = write(tmp_path, "s:\n  type: slurm\n  grace_period: 60\n  signal_lead: 120\n")
    assert load_clusters(ok)["s"].signal_lead == 120


def test_slurm_field_on_local_warns(tmp_path):
    path = write(tmp_path, "c:\n  type: local\n  partition: x\n")
    with pytest.warns(ClusterConfigWarning, match="only applies to slurm"):
        load_clusters(path)


def test_file_level_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_clusters(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="YAML syntax error"):
        load_clusters(write(tmp_path, "c: [\n"))
    with pytest.raises(ConfigError, match="empty"):
        load_clusters(write(tmp_path, ""))
    with pytest.raises(ConfigError, match="cluster 'c': expected a mapping"):
        load_clusters(write(tmp_path, "c: 3\n"))
    with pytest.raises(ConfigError, match="cluster names"):
        load_clusters(write(tmp_path, "'a b':\n  type: local\n"))
