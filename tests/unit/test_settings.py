"""Settings: defaults, then JUQUEUE_* variables, then explicit overrides; bad values name their source."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from juqueue.definitions.clusters import load_clusters
from juqueue.errors import ConfigError
from juqueue.serve.controller_step import controller_timings
from juqueue.settings import ENV_VARS, Settings


def test_defaults_match_todays_timings():
    s = Settings.from_env(environ={})
    assert (s.lease_ttl_s, s.start_timeout_s, s.stop_escalate_s, s.controller_silence_s, s.eval_timeout_s,
            s.heartbeat_interval_s, s.heartbeat_timeout_s) == (120.0, 120.0, 60.0, 600.0, 60.0, 5.0, 30.0)
    assert s == Settings()


def test_every_field_has_its_variable():
    assert set(ENV_VARS) == {f.name for f in dataclasses.fields(Settings)}
    env = {var: str(10 + i) for i, var in enumerate(ENV_VARS.values())}
    s = Settings.from_env(environ=env)
    assert [getattr(s, name) for name in ENV_VARS] == [float(10 + i) for i in range(len(ENV_VARS))]


def test_environment_reads():
    s = Settings.from_env(environ={"JUQUEUE_LEASE_TTL": "30", "JUQUEUE_EVAL_TIMEOUT": " 2.5 ", "JUQUEUE_START_TIMEOUT": ""})
    assert s.lease_ttl_s == 30.0 and s.eval_timeout_s == 2.5 and s.start_timeout_s == 120.0


def test_process_environment_is_the_default_source(monkeypatch):
    monkeypatch.setenv("JUQUEUE_STOP_ESCALATE", "7")
    assert Settings.from_env().stop_escalate_s == 7.0


@pytest.mark.parametrize("var,value", [("JUQUEUE_LEASE_TTL", "soon"), ("JUQUEUE_HEARTBEAT_INTERVAL", "0"),
                                       ("JUQUEUE_HEARTBEAT_TIMEOUT", "-3"), ("JUQUEUE_START_TIMEOUT", "nan"),
                                       ("JUQUEUE_STOP_ESCALATE", "inf"), ("JUQUEUE_CONTROLLER_SILENCE", "0.5")])
def test_a_bad_variable_is_named(var, value):
    with pytest.raises(ConfigError, match=var):
        Settings.from_env(environ={var: value})


def test_overrides_win_over_environment():
    env = {"JUQUEUE_LEASE_TTL": "30", "JUQUEUE_START_TIMEOUT": "40"}
    s = Settings.from_env({"lease_ttl_s": 50, "start_timeout_s": None}, environ=env)
    assert s.lease_ttl_s == 50 and s.start_timeout_s == 40.0  # None: not given
    assert dataclasses.replace(s, stop_escalate_s=9).stop_escalate_s == 9


def test_bad_overrides_are_refused():
    with pytest.raises(ConfigError, match="unknown setting"):
        Settings.from_env({"lease_ttl": 5}, environ={})
    with pytest.raises(ConfigError, match="lease_ttl_s"):
        Settings.from_env({"lease_ttl_s": -1}, environ={})
    with pytest.raises(ConfigError, match="lease_ttl_s"):
        dataclasses.replace(Settings(), lease_ttl_s="soon")  # type: ignore[arg-type]


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().lease_ttl_s = 1  # type: ignore[misc]


def test_controller_config_takes_the_timings():
    timings = controller_timings(Settings(lease_ttl_s=11, start_timeout_s=12, stop_escalate_s=13, controller_silence_s=14,
                                          heartbeat_interval_s=2, heartbeat_timeout_s=9))
    assert timings == {"lease_ttl_s": 11, "start_timeout_s": 12, "stop_escalate_s": 13, "controller_silence_s": 14,
                       "heartbeat_interval_s": 2, "heartbeat_timeout_s": 9}


def test_heartbeat_defaults_fill_clusters_that_set_none(tmp_path: Path):
    path = tmp_path / "clusters.yaml"
    path.write_text("own:\n  type: local\n  heartbeat_interval: 1\n  heartbeat_timeout: 4\nplain:\n  type: local\n")
    clusters = load_clusters(path, Settings(heartbeat_interval_s=2, heartbeat_timeout_s=12).cluster_defaults())
    assert (clusters["own"].heartbeat_interval, clusters["own"].heartbeat_timeout) == (1, 4)  # the cluster's keys win
    assert (clusters["plain"].heartbeat_interval, clusters["plain"].heartbeat_timeout) == (2, 12)
    assert load_clusters(path)["plain"].heartbeat_interval == 5.0
