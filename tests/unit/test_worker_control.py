"""The worker's control thread without a broker: one handler per control op (the table), the
heartbeat's lease renewal, the job script's files, and self-fencing when leases cannot be renewed."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
import redis

from juqueue.definitions.models import ClusterSpec
from juqueue.events import HEARTBEAT
from juqueue.paths import WorkDir
from juqueue.workers import control
from juqueue.workers.attempt import LiveAttempt
from juqueue.workers.control import CONTROL_OPS, NodeControl, control_op
from juqueue.workers.runtime import NodeConfig, NodeRuntime


def make_control(tmp_path: Path, **config) -> NodeControl:
    spec = ClusterSpec(name="c", type="local", num_slots=4, grace_period=42)
    cfg = NodeConfig(node="n1", token="t", namespace="ns", version="v9", cluster=spec, **config)
    rt = NodeRuntime(WorkDir(tmp_path), cfg, redis.Redis(host="127.0.0.1", port=1))  # never contacted
    rt.emitted = []  # type: ignore[attr-defined]
    rt.emit = rt.emitted.append  # type: ignore[attr-defined, method-assign]
    return NodeControl(rt)


def hold(ctl: NodeControl, gid: str = "e@r", attempt: int = 1) -> LiveAttempt:
    live = LiveAttempt(gid, attempt, (0,))  # no process: signals go nowhere
    ctl.runtime.live[gid] = live
    return live


def cancel_timers(ctl: NodeControl) -> None:
    for live in ctl.runtime.live.values():
        if live.kill_timer is not None:
            live.kill_timer.cancel()


# ---- the table ---------------------------------------------------------------------------------
def test_every_op_the_controller_sends_has_a_handler():
    assert set(CONTROL_OPS) == {"stop", "drain", "shutdown"}


def test_a_registered_op_is_dispatched_with_its_command(tmp_path, monkeypatch):
    monkeypatch.setattr(control, "CONTROL_OPS", dict(CONTROL_OPS))
    seen = []

    @control_op("ping")
    def _ping(ctl: NodeControl, command: dict) -> None:
        seen.append((ctl, command))

    assert control.CONTROL_OPS["ping"] is _ping and "ping" not in CONTROL_OPS
    ctl = make_control(tmp_path)
    ctl.handle_control({"op": "ping", "x": 1})
    assert seen == [(ctl, {"op": "ping", "x": 1})]


@pytest.mark.parametrize("command", [{"op": "reboot"}, {}, {"op": ["stop"]}, {"op": None}])
def test_an_unknown_op_is_logged_and_changes_nothing(tmp_path, caplog, command):
    ctl = make_control(tmp_path)
    hold(ctl)
    with caplog.at_level(logging.WARNING, logger="juqueue.workers.control"):
        ctl.handle_control(command)
    assert "unknown control command" in caplog.text
    rt = ctl.runtime
    assert not rt.draining and not rt.stopping and rt.live["e@r"].stop_reason is None


# ---- the handlers ------------------------------------------------------------------------------
def test_stop_takes_the_clusters_grace_and_a_default_reason(tmp_path):
    ctl = make_control(tmp_path)
    live = hold(ctl)
    ctl.handle_control({"op": "stop", "global_id": "e@r"})
    assert live.stop_reason == "stop" and live.kill_timer is not None and live.kill_timer.interval == 42.0
    cancel_timers(ctl)


def test_stop_names_its_attempt_and_grace(tmp_path):
    ctl = make_control(tmp_path)
    live = hold(ctl, attempt=2)
    ctl.handle_control({"op": "stop", "global_id": "e@r", "attempt": 1, "reason": "cancel", "grace": 5})
    assert live.stop_reason is None  # another attempt: not this one
    ctl.handle_control({"op": "stop", "global_id": "e@r", "attempt": 2, "reason": "cancel", "grace": "5"})
    assert live.stop_reason == "cancel" and live.kill_timer.interval == 5.0
    ctl.handle_control({"op": "stop", "global_id": "e@gone"})  # not held here: nothing
    cancel_timers(ctl)


def test_drain_takes_nothing_new_and_asks_for_a_heartbeat(tmp_path):
    ctl = make_control(tmp_path)
    live = hold(ctl)
    ctl.handle_control({"op": "drain"})
    rt = ctl.runtime
    assert rt.draining and not rt.stopping and rt.hb_soon.is_set() and live.stop_reason is None


def test_shutdown_stops_every_run_then_asks_to_exit(tmp_path, monkeypatch):
    ctl = make_control(tmp_path)
    lives = [hold(ctl, "e@a"), hold(ctl, "e@b")]
    exits = []
    monkeypatch.setattr(ctl, "request_exit", lambda: exits.append(1))  # the real one signals this process
    ctl.handle_control({"op": "shutdown", "reason": "node stopped"})
    rt = ctl.runtime
    assert rt.stopping and rt.draining and rt.hb_soon.is_set() and exits == [1]
    assert [live.stop_reason for live in lives] == ["node stopped", "node stopped"]
    assert all(live.kill_timer.interval == 42 for live in lives)
    cancel_timers(ctl)


# ---- heartbeats, files, self-fencing -----------------------------------------------------------
class FakeLeases:
    def __init__(self, results: dict) -> None:
        self.results, self.calls = results, []

    def renew_many(self, items, node, ttl):
        self.calls.append((items, node, ttl))
        return self.results


def test_a_heartbeat_renews_every_lease_and_stops_a_fenced_attempt(tmp_path):
    ctl = make_control(tmp_path, lease_ttl_s=30.0)
    kept, fenced = hold(ctl, "e@a", 1), hold(ctl, "e@b", 4)
    rt = ctl.runtime
    rt.leases = FakeLeases({("e@a", 1): 1, ("e@b", 4): 0})  # type: ignore[assignment]
    ctl.heartbeat()
    assert rt.leases.calls == [([("e@a", 1), ("e@b", 4)], "n1", 30.0)]
    assert kept.stop_reason is None and fenced.stop_reason == "fenced" and fenced.kill_timer.interval == 0.0
    (hb,) = rt.emitted
    assert hb.type == HEARTBEAT and hb.running == ["e@a|1", "e@b|4"] and hb.version == "v9"
    cancel_timers(ctl)


def test_the_drain_file_stops_runs_and_the_stop_file_shuts_down(tmp_path):
    ctl = make_control(tmp_path)
    live = hold(ctl)
    rt = ctl.runtime
    node_dir = rt.work.node_dir("n1")
    node_dir.mkdir(parents=True)
    (node_dir / "drain").write_text("")
    ctl._check_drain_file()
    assert rt.draining and not rt.stopping and live.stop_reason == "wall time near"
    (node_dir / "stopping").write_text("")
    ctl._check_stop_file()
    assert rt.stopping
    cancel_timers(ctl)


class UnreachableBroker:
    def blpop(self, keys, timeout):
        raise redis.ConnectionError("down")


def test_a_worker_that_cannot_renew_its_leases_kills_its_runs(tmp_path):
    ctl = make_control(tmp_path, lease_ttl_s=0.5)
    live = hold(ctl)
    ctl.runtime.redis = UnreachableBroker()  # type: ignore[assignment]
    loop = threading.Thread(target=ctl.control_loop, daemon=True)
    loop.start()
    deadline = time.monotonic() + 10
    while live.stop_reason is None and time.monotonic() < deadline:
        time.sleep(0.05)
    ctl._stop_loop.set()
    loop.join(5)
    assert live.stop_reason == "lease lost" and live.kill_timer.interval == 0.0
