"""The step runner (dependency order, reverse stop of the started steps only, failures mid-start),
and the serve steps' own teardown rules, with fakes."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from juqueue.errors import AlreadyRunningError, ConfigError
from juqueue.serve import run_server
from juqueue.serve.broker_step import BrokerStep
from juqueue.serve.context import ServeContext
from juqueue.serve.controller_step import ControllerStep
from juqueue.serve.options import ServeOptions
from juqueue.serve.server import serve_steps
from juqueue.serve.steps import StepRunner, dependency_order
from juqueue.serve.workdir_step import WorkDirStep
from juqueue.settings import Settings


class FakeStep:
    def __init__(self, name: str, log: list[str], requires: tuple[str, ...] = (), fail_start: bool = False,
                 fail_stop: bool = False) -> None:
        self.name, self.requires, self.log = name, requires, log
        self.fail_start, self.fail_stop = fail_start, fail_stop

    def start(self, ctx: object) -> None:
        if self.fail_start:
            self.log.append(f"fail {self.name}")
            raise RuntimeError(f"{self.name} broke")
        self.log.append(f"start {self.name}")

    def stop(self, ctx: object) -> None:
        self.log.append(f"stop {self.name}")
        if self.fail_stop:
            raise RuntimeError(f"{self.name} would not stop")


def test_starts_in_order_and_stops_in_reverse():
    log: list[str] = []
    runner = StepRunner([FakeStep("a", log), FakeStep("b", log, ("a",)), FakeStep("c", log, ("b",))])
    runner.start(None)
    runner.stop(None)
    assert log == ["start a", "start b", "start c", "stop c", "stop b", "stop a"]
    runner.stop(None)  # stopped steps are not stopped twice
    assert len(log) == 6


def test_requirements_reorder_steps():
    log: list[str] = []
    steps = [FakeStep("api", log, ("store",)), FakeStep("store", log, ("lock",)), FakeStep("lock", log), FakeStep("x", log)]
    assert [s.name for s in dependency_order(steps)] == ["lock", "store", "api", "x"]


def test_bad_requirements_are_refused():
    log: list[str] = []
    with pytest.raises(ValueError, match="unknown"):
        dependency_order([FakeStep("a", log, ("nope",))])
    with pytest.raises(ValueError, match="cycle"):
        dependency_order([FakeStep("a", log, ("b",)), FakeStep("b", log, ("a",))])
    with pytest.raises(ValueError, match="repeat"):
        dependency_order([FakeStep("a", log), FakeStep("a", log)])


def test_a_step_failing_mid_start_stops_only_the_started_ones():
    log: list[str] = []
    runner = StepRunner([FakeStep("a", log), FakeStep("b", log), FakeStep("c", log, fail_start=True), FakeStep("d", log)])
    with pytest.raises(RuntimeError, match="c broke"):
        runner.start(None)
    assert log == ["start a", "start b", "fail c", "stop b", "stop a"]
    assert runner.started == []


def test_a_failing_stop_does_not_keep_the_others_running():
    log: list[str] = []
    runner = StepRunner([FakeStep("a", log), FakeStep("b", log, fail_stop=True), FakeStep("c", log)])
    runner.start(None)
    runner.stop(None)
    assert log[3:] == ["stop c", "stop b", "stop a"]


def test_serve_steps_are_in_dependency_order():
    steps = serve_steps()
    assert [s.name for s in dependency_order(steps)] == [s.name for s in steps] == [
        "workdir", "listen", "store", "broker", "backends", "controller", "reloader", "helpers", "api"]


# ---------------------------------------------------------------------- the real steps, with fakes


def _ctx(tmp_path: Path) -> ServeContext:
    defs = tmp_path / "defs"
    defs.mkdir(exist_ok=True)
    (defs / "clusters.yaml").write_text("local:\n  type: local\n")
    return ServeContext.create(ServeOptions(def_dir=defs, work_dir=tmp_path / "work", port=-1), Settings())


class FakeBroker:
    host = "127.0.0.1"

    def __init__(self) -> None:
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True


@pytest.mark.parametrize("jobs_alive", [False, True])
def test_the_embedded_broker_outlives_serve_while_slurm_jobs_live(tmp_path, capsys, monkeypatch, jobs_alive):
    from juqueue.broker.lifetime import ServedNode, read_ledger

    watchers: list[str] = []
    monkeypatch.setattr("juqueue.broker.watcher.ensure_watcher", lambda work: watchers.append("started"))
    monkeypatch.setattr("juqueue.broker.watcher.stop_watcher", lambda work: watchers.append("stopped"))
    ctx = _ctx(tmp_path)
    ctx.work.broker_dir.mkdir(parents=True)
    ctx.broker = FakeBroker()  # type: ignore[assignment]
    live_node = SimpleNamespace(name="n", backend="slurm" if jobs_alive else "local", state=SimpleNamespace(is_live=True),
                                job_id="77" if jobs_alive else None, pid=None if jobs_alive else 2**22 + 1)
    calls: list[bool] = []
    ctx.controller = SimpleNamespace(shutdown=lambda cancel_jobs: calls.append(cancel_jobs), nodes={"n": live_node})  # type: ignore[assignment]
    ctx.cancel_jobs = True
    ControllerStep().stop(ctx)
    BrokerStep().stop(ctx)
    assert calls == [True] and ctx.slurm_jobs_alive is jobs_alive
    assert ctx.broker.stopped is not jobs_alive  # type: ignore[union-attr]
    assert ("embedded broker stays up" in capsys.readouterr().out) is jobs_alive
    # the ledger names no server now, and the jobs the kept broker serves: its watcher ends it after them
    ledger = read_ledger(ctx.work)
    assert ledger.server is None and ledger.grace_s == ctx.settings.broker_grace_s
    assert ledger.nodes == ((ServedNode("n", "slurm", job_id="77"),) if jobs_alive else ())
    assert watchers == (["started"] if jobs_alive else ["stopped"])


def test_the_work_dir_lock_names_its_holder_and_is_released(tmp_path):
    first, second = _ctx(tmp_path), _ctx(tmp_path)
    step = WorkDirStep()
    step.start(first)
    assert first.clusters["local"].type == "local" and first.token
    with pytest.raises(AlreadyRunningError, match=r"host=.* pid="):
        WorkDirStep().start(second)
    step.stop(first)
    again = WorkDirStep()
    again.start(second)
    assert second.token == first.token
    again.stop(second)


def test_a_failed_migration_releases_the_lock(tmp_path, monkeypatch):
    def refuse(work, db_url):
        raise ConfigError("no")

    monkeypatch.setattr("juqueue.serve.workdir_step.migrate_work_dir", refuse)
    with pytest.raises(ConfigError):
        WorkDirStep().start(_ctx(tmp_path))
    monkeypatch.undo()
    step, ctx = WorkDirStep(), _ctx(tmp_path)
    step.start(ctx)
    step.stop(ctx)


def test_a_step_refusing_to_start_is_one_line_and_undoes_the_started_ones(tmp_path, monkeypatch, capsys):
    def refuse(self, ctx):
        raise ConfigError("store refused")

    monkeypatch.setattr("juqueue.serve.store_step.StoreStep.start", refuse)
    ctx = _ctx(tmp_path)
    assert run_server(ctx.opts, Settings()) == 2
    assert "juqueue: store refused" in capsys.readouterr().err
    step = WorkDirStep()
    step.start(ctx)  # the lock was released
    step.stop(ctx)


def test_a_bad_setting_in_the_environment_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("JUQUEUE_LEASE_TTL", "soon")
    assert run_server(_ctx(tmp_path).opts) == 2
    assert "JUQUEUE_LEASE_TTL" in capsys.readouterr().err


def test_reload_refuses_the_first_slurm_cluster_on_a_loopback_broker(tmp_path):
    from juqueue.definitions.models import ClusterSpec
    from juqueue.serve.reloader import Reloader

    ctx = _ctx(tmp_path)
    ctx.broker = FakeBroker()  # type: ignore[assignment]
    applied: list[dict] = []
    controller = SimpleNamespace(backends={"local": object()}, call=lambda fn: fn(),
                                 apply_clusters=lambda new: applied.append(new) or {"added": sorted(new)})
    (ctx.def_dir / "clusters.yaml").write_text("local:\n  type: local\nbig:\n  type: slurm\n")
    changes, errors = Reloader(ctx, controller).reload_clusters()  # type: ignore[arg-type]
    assert changes == {} and "first slurm cluster" in errors[0] and applied == [] and "slurm" not in controller.backends
    (ctx.def_dir / "clusters.yaml").write_text("local:\n  type: local\n  heartbeat_interval: 1\n")
    changes, errors = Reloader(ctx, controller).reload_clusters()  # type: ignore[arg-type]
    assert errors == [] and applied[0]["local"] == ClusterSpec(name="local", type="local", heartbeat_interval=1)
