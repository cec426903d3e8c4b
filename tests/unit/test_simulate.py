"""`juqueue simulate`: hand-computed scenarios, the lower bound, policies compared, bad input,
determinism, the JSON shape, and replaying a work dir's store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from juqueue.cli import app
from juqueue.policy.consolidation_model import ConsolidationMode
from juqueue.policy.scaling import ScalingPolicy
from juqueue.simulate.distributions import SimulationInputError, parse_distribution
from juqueue.simulate.dispatch import PLACEMENT_LOOKAHEAD
from juqueue.simulate.engine import Simulation, lower_bound_node_seconds, simulate
from juqueue.simulate.inputs import SimulateOptions, resolve
from juqueue.simulate.original import HeldNode, original_nodes_to_stop
from juqueue.simulate.sources import load_durations_csv, load_work_dir
from juqueue.simulate.state import PolicyVariant, policy_variants
from juqueue.simulate.workload import Conditions, SimRun, Workload, generated_workload

runner = CliRunner()
IDLE = PolicyVariant("idle", ConsolidationMode.IDLE, ScalingPolicy.MAXIMIZE_RUNNING)
AGGRESSIVE = PolicyVariant("aggressive", ConsolidationMode.AGGRESSIVE, ScalingPolicy.MAXIMIZE_RUNNING)


def _run(workload: Workload, conditions: Conditions, policy: PolicyVariant, **kw):
    return Simulation(workload, conditions, policy, check_fast_path=True, record_series=True, **kw).run()


def _runs(*durations: float, **kw) -> Workload:
    return Workload(tuple(SimRun(f"e@r{i}", d, **kw) for i, d in enumerate(durations)))


# ---------------------------------------------------------------------- hand-computed
def test_hand_computed_node_seconds_idle_and_aggressive():
    """2 nodes x 2 slots, runs of 10, 10, 10, 30 s, all queued at 0, nodes up at once.
    n1 takes r0, r1 and n2 r2, r3 (queue order, best fit). At 10 s only r3 (30 s) is left, on n2.
    aggressive: n1 is empty surplus, released at once (10 s); n2 at 30 s when r3 ends: 40 node-s.
    idle: n1 idles from 10 s, its 5 s idle_timeout is seen on the 2 s tick grid at 16 s; n2
    idles from 30 s and goes at 36 s: 16 + 36 = 52 node-s."""
    w = _runs(10, 10, 10, 30)
    c = Conditions(num_slots=2, max_jobs=2, idle_timeout_s=5)
    aggressive, idle = _run(w, c, AGGRESSIVE), _run(w, c, IDLE)
    assert aggressive.node_seconds == 40.0 and idle.node_seconds == 52.0
    assert aggressive.makespan_s == idle.makespan_s == 30.0
    assert aggressive.series == [(0.0, 2, 4), (10.0, 1, 1), (30.0, 0, 0)]
    assert idle.series == [(0.0, 2, 4), (10.0, 2, 1), (16.0, 1, 1), (30.0, 1, 0), (36.0, 0, 0)]
    assert aggressive.max_nodes == 2 and aggressive.moves == 0 and aggressive.busy_slot_seconds == 60.0
    assert lower_bound_node_seconds(w, c) == 30.0


def test_queue_wait_bills_nothing():
    """The same with a fixed 100 s queue wait: nodes bill from 100 s, the makespan moves by 100 s."""
    w = _runs(10, 10, 10, 30)
    c = Conditions(num_slots=2, max_jobs=2, idle_timeout_s=5, queue_wait=parse_distribution("fixed:100", "q", ("fixed",)))
    r = _run(w, c, AGGRESSIVE)
    assert r.node_seconds == 40.0 and r.makespan_s == 130.0


def test_wall_time_checkpoints_and_restart_cost_by_hand():
    """One run of 250 s on 1-slot nodes living 100 s, checkpoints every 40 s, restarts cost 10 s.
    0-100: 100 s of progress, keeps 80 (lost 20). 100-200: 10 s restart, 90 s of progress, keeps 80
    (160 saved; lost 10). 200-300: 10 s restart, the last 90 s. Three nodes of 100 s each."""
    w = _runs(250)
    c = Conditions(num_slots=1, max_jobs=1, wall_time_s=100, checkpoint_interval_s=40, restart_cost_s=10)
    r = _run(w, c, AGGRESSIVE)
    assert r.makespan_s == 300.0 and r.node_seconds == 300.0
    assert r.lost_seconds == 30.0 and r.wall_time_interruptions == 2 and r.node_starts == 3
    assert r.busy_slot_seconds == 300.0


def test_run_that_never_fits_its_wall_time_is_refused():
    with pytest.raises(SimulationInputError, match="e@r0 needs 250 s.*--checkpoint-interval"):
        Simulation(_runs(250), Conditions(num_slots=1, max_jobs=1, wall_time_s=100), AGGRESSIVE)


def test_k_slot_runs_and_lower_bound():
    """A 2-slot run and two 1-slot runs of 10 s on 2-slot nodes: demand 4 slots, two nodes, the
    2-slot run alone on one. Lower bound: (2 x 10 + 10 + 10) / 2 = 20 node-s, reached."""
    w = Workload((SimRun("e@big", 10, slots=2), SimRun("e@a", 10), SimRun("e@b", 10)))
    c = Conditions(num_slots=2, max_jobs=2)
    r = _run(w, c, AGGRESSIVE)
    assert lower_bound_node_seconds(w, c) == 20.0
    assert r.node_seconds == 20.0 and r.busy_slot_seconds == 40.0 and r.max_nodes == 2
    with pytest.raises(SimulationInputError, match="slots: 3 but cluster sim has num_slots: 2"):
        Simulation(Workload((SimRun("e@huge", 1, slots=3),)), c, AGGRESSIVE)


def test_dependencies_wait():
    w = Workload((SimRun("e@a", 10), SimRun("e@b", 20, depends_on=("e@a",)), SimRun("e@c", 5, depends_on=("e@b",))))
    r = _run(w, Conditions(num_slots=4, max_jobs=1), AGGRESSIVE)
    assert r.makespan_s == 35.0 and r.node_seconds == 35.0


def test_consolidation_moves_a_run_and_saves_node_seconds():
    """Two 2-slot nodes, each left with one long run: aggressive moves one (after consolidate_after
    and the re-check) and releases its node; idle keeps both until the long runs end."""
    w = _runs(5, 1000, 5, 1000, expected_s=None)
    c = Conditions(num_slots=2, max_jobs=2, consolidate_after_s=10, checkpoint_interval_s=0)
    idle, aggressive = _run(w, c, IDLE), _run(w, c, AGGRESSIVE)
    assert aggressive.moves == 1 and aggressive.nodes_emptied == 1
    assert aggressive.node_seconds < idle.node_seconds - 900
    assert aggressive.makespan_s == pytest.approx(1000.0)  # continuous checkpoints, no restart cost


def test_original_kills_the_least_occupied_node_at_once():
    assert original_nodes_to_stop([HeldNode("a", False, 3), HeldNode("b", False, 1), HeldNode("c", True, 0)], 1) == ["c", "b"]
    assert original_nodes_to_stop([HeldNode("a", False, 3)], 1) == []
    w = _runs(5, 1000, 5, 1000)
    r = _run(w, Conditions(num_slots=2, max_jobs=2), PolicyVariant("original", None, ScalingPolicy.MAXIMIZE_RUNNING))
    assert r.moves == 1 and r.makespan_s > 1000.0  # no checkpoints: the killed run starts over


# ---------------------------------------------------------------------- wall time without a gap
class _Watched(Simulation):
    """Asserts max_jobs at every node start and records when each node ends and its warning."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.ended: dict[str, tuple[float, float | None, str | None, float | None]] = {}

    def start_node(self, t):
        node = super().start_node(t)
        assert len(self.nodes) <= self.c.max_jobs, (t, list(self.nodes))
        return node

    def _end_node(self, node, t):
        self.ended[node.name] = (t, node.warning_at, node.replaces, node.protected_until)
        super()._end_node(node, t)

    def check_replacements_outlive_their_predecessors(self) -> None:
        for name, (ended, _, replaces, until) in self.ended.items():
            if replaces is not None:
                warning = self.ended[replaces][1]
                assert until == warning + self.c.grace_period_s and ended >= until, (name, ended, replaces, warning)


def _walled(lead: float, max_jobs: int = 4, **kw) -> Conditions:
    """4-slot nodes living 3600 - 120 s after a fixed 300 s queue wait (warning at 3780 s for the first ones)."""
    return Conditions(num_slots=4, max_jobs=max_jobs, wall_time_s=3600, signal_lead_s=120, checkpoint_interval_s=600,
                      queue_wait=parse_distribution("fixed:300", "q", ("fixed",)), replacement_lead_s=lead, **kw)


def _watched(workload: Workload, conditions: Conditions, policy: PolicyVariant):
    sim = _Watched(workload, conditions, policy, check_fast_path=True, record_series=True)
    result = sim.run()
    sim.check_replacements_outlive_their_predecessors()
    return sim, result


@pytest.mark.parametrize("policy", [AGGRESSIVE, IDLE], ids=lambda p: p.name)
def test_replacement_closes_the_wall_time_gap(policy):
    """6 runs of 5000 s (unknown to the policy) on 2 nodes that drain at 3780 s. Lead 600: at 3180 s
    each node gets a replacement (up at 3480 s, slots reserved); the drained runs start on it at
    3780 s: no gap. Lead 0: they wait for new nodes' 300 s queue wait."""
    w = _runs(*[5000] * 6)
    sim, gapless = _watched(w, _walled(600), policy)
    _, gapped = _watched(w, _walled(0), policy)
    assert gapless.replacements == 2 and gapless.wall_time_interruptions == gapped.wall_time_interruptions == 6
    assert gapless.wall_time_gaps == 6 and gapless.wall_time_gap_max_s <= 2 * sim.c.tick_s
    assert gapped.replacements == 0 and gapped.wall_time_gap_mean_s >= 300.0 and gapped.wall_time_gap_max_s >= 300.0
    assert gapless.makespan_s <= gapped.makespan_s - 300.0
    # the price: each replacement bills from when it is up (3480 s) while the node it replaces still runs
    assert gapless.node_seconds == pytest.approx(gapped.node_seconds + 2 * 300.0, abs=2 * 2 * sim.c.tick_s)
    replacements = [(name, until) for name, (_, _, replaces, until) in sim.ended.items() if replaces]
    assert len(replacements) == 2 and all(until == 3780.0 + 30.0 for _, until in replacements)


def test_replacements_never_exceed_max_jobs():
    """The same 6 runs with max_jobs 3: room for one replacement only (the earlier-named node's
    4 runs); the other node's 2 runs wait for a node started after the drain (300 s)."""
    sim, r = _watched(_runs(*[5000] * 6), _walled(600, max_jobs=3), AGGRESSIVE)
    assert r.replacements == 1 and r.max_nodes <= 3
    assert r.wall_time_gap_max_s >= 300.0 and r.wall_time_gap_mean_s == pytest.approx(2 * r.wall_time_gap_max_s / 6)
    _, full = _watched(_runs(*[5000] * 8), _walled(600, max_jobs=2), AGGRESSIVE)
    assert full.replacements == 0  # every node is live already


@pytest.mark.parametrize("policy", [AGGRESSIVE, IDLE], ids=lambda p: p.name)
def test_a_replacement_is_kept_until_its_predecessors_warning_and_grace(policy):
    """A run of 3300 s (unknown to the policy) outlives nothing in fact: it ends at 3600 s, before
    the warning (3780 s), but the replacement started at 3180 s is up and empty by then. It is
    neither released (surplus) nor timed out as idle before 3780 + 30 s; then it goes at once."""
    sim, r = _watched(_runs(3300), _walled(600, idle_timeout_s=5), policy)
    assert r.replacements == 1 and r.wall_time_interruptions == 0 and r.makespan_s == 3600.0
    (ended,) = [end for end, _, replaces, _ in sim.ended.values() if replaces]
    assert ended == 3810.0


def test_replacement_lead_on_the_command_line():
    args = ["simulate", "--runs", "6", "--duration-dist", "fixed:5000", "--num-slots", "4", "--max-jobs", "4",
            "--wall-time", "3600", "--queue-wait-dist", "fixed:300", "--checkpoint-interval", "600", "--json",
            "--policy", "aggressive", "--policy", "original"]
    on = json.loads(runner.invoke(app, args).stdout)
    off = json.loads(runner.invoke(app, [*args, "--replacement-lead", "0"]).stdout)
    assert on["replacement_lead_s"] == 600.0 and off["replacement_lead_s"] == 0.0 and on["wall_time_s"] == 3600.0
    by_name = {p["name"]: p for p in on["policies"]}
    assert by_name["aggressive"]["replacements"] == 2 and by_name["aggressive"]["wall_time_gap_max_s"] == 0.0
    assert by_name["original"]["replacements"] == 0 and by_name["original"]["wall_time_gap_mean_s"] >= 300.0
    assert [p["replacements"] for p in off["policies"]] == [0, 0]
    assert all(p["wall_time_gap_mean_s"] >= 300.0 for p in off["policies"])
    table = runner.invoke(app, args[:-5]).stdout
    assert "replacements" in table and "wall gap s" in table


# ---------------------------------------------------------------------- policies compared
def _tail_heavy(seed: int) -> tuple[Workload, Conditions]:
    w = generated_workload(300, parse_distribution("lognormal:median=600,sigma=1.5", "d", ("lognormal",)), seed)
    return w, Conditions(num_slots=4, max_jobs=20, checkpoint_interval_s=60, restart_cost_s=10)


def test_aggressive_bills_less_than_idle_on_a_tail_heavy_sweep():
    w, c = _tail_heavy(3)
    idle, aggressive = _run(w, c, IDLE), _run(w, c, AGGRESSIVE)
    lower = lower_bound_node_seconds(w, c)
    assert aggressive.node_seconds < 0.9 * idle.node_seconds
    assert lower <= aggressive.node_seconds and lower <= idle.node_seconds
    assert aggressive.moves > 0 and idle.moves == 0 and aggressive.evaluations > 0


def test_same_seed_same_result():
    w, c = _tail_heavy(5)
    c = Conditions(num_slots=4, max_jobs=20, queue_wait=parse_distribution("exp:mean=300", "q", ("exp",)))
    first = simulate(w, c, policy_variants(c), seed=7)
    again = simulate(*_tail_heavy(5)[:1], c, policy_variants(c), seed=7)
    other = simulate(w, c, policy_variants(c), seed=8)
    assert [vars(r) for r in first] == [vars(r) for r in again]
    assert [r.node_seconds for r in first] != [r.node_seconds for r in other]
    assert [p.name for p in policy_variants(c)] == ["idle", "original", "aggressive", "aggressive+minimize_jobs",
                                                    "aggressive+min_saturation"]


def test_fast_snapshot_objects_equal_the_models():
    from juqueue.policy.consolidation_model import NodePhase, NodeSnapshot, RunOnNode
    from juqueue.simulate.snapshot import make_node_snapshot, make_run_on_node

    fast = make_run_on_node("e@a", 5.0, 2, False, 1.0, 60.0, None, 3600.0, 300.0, True, True, "e")
    slow = RunOnNode("e@a", 5.0, slots=2, movable=False, moved_at=1.0, expected_duration_s=60.0,
                     checkpoint_interval_s=3600.0, restart_cost_s=300.0, checkpoint_on_term=True, resumed=True,
                     experiment="e")
    assert fast == slow and hash(fast) == hash(slow) and repr(fast) == repr(slow)
    assert make_node_snapshot is not NodeSnapshot and make_run_on_node is not RunOnNode  # the fast ones are in use
    node = make_node_snapshot("n1", 4, NodePhase.ACCEPTING, 3.0, 99.0, (fast,), 1, True)
    assert node == NodeSnapshot("n1", 4, NodePhase.ACCEPTING, started_at=3.0, time_limit_at=99.0, runs=(slow,), reserved_slots=1,
                                protected=True)
    assert node.free_slots == 1 and not node.pending and not node.is_empty


def test_placement_lookahead_is_the_controllers():
    from juqueue.controller.dispatch import PLACEMENT_LOOKAHEAD as controllers

    assert PLACEMENT_LOOKAHEAD == controllers


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize("text, flag, message", [
    ("lognormal:median=60", "--duration-dist", "expected fixed:S"),
    ("lognormal:median=x,sigma=1", "--duration-dist", "median must be a number >= 0"),
    ("gauss:mu=1", "--duration-dist", "expected fixed:S"),
    ("uniform:lo=9,hi=3", "--duration-dist", "lo must not exceed hi"),
    ("exp:mean=-5", "--queue-wait-dist", "mean must be a number >= 0"),
])
def test_bad_distributions(text, flag, message):
    kinds = ("fixed", "uniform", "lognormal") if flag == "--duration-dist" else ("exp", "fixed")
    with pytest.raises(SimulationInputError, match=message) as err:
        parse_distribution(text, flag, kinds)
    assert str(err.value).startswith(f"{flag} {text!r}")


def test_good_distributions():
    assert parse_distribution("fixed:01:00:00", "f", ("fixed",)).param("value") == 3600.0
    assert parse_distribution("90", "f", ("fixed",)).param("value") == 90.0
    d = parse_distribution("lognormal:sigma=1,median=3600", "f", ("lognormal",))
    assert (d.param("median"), d.param("sigma")) == (3600.0, 1.0)


def test_negative_duration_is_named():
    with pytest.raises(SimulationInputError, match="run e@x: negative duration"):
        SimRun("e@x", -1.0)


def test_bad_cli_input_is_one_line_and_exit_2(tmp_path: Path):
    defs = tmp_path / "defs"
    defs.mkdir()
    (defs / "clusters.yaml").write_text("local:\n  type: local\n  num_slots: 2\n")
    (tmp_path / "d.csv").write_text("duration\n10\n-5\n")
    cases = [
        (["--def-dir", str(defs), "--cluster", "nope", "--runs", "3", "--duration-dist", "fixed:5"], "no cluster 'nope'"),
        (["--runs", "3", "--duration-dist", "weibull:k=1", "--num-slots", "2", "--max-jobs", "1"], "--duration-dist 'weibull:k=1'"),
        (["--durations", str(tmp_path / "d.csv"), "--num-slots", "2", "--max-jobs", "1"], "d.csv line 3: duration '-5'"),
        (["--runs", "3", "--duration-dist", "fixed:5"], "no cluster: give --def-dir"),
        (["--runs", "3", "--duration-dist", "fixed:5", "--num-slots", "x", "--max-jobs", "1"], "--num-slots 'x'"),
        (["--num-slots", "2", "--max-jobs", "1"], "no workload"),
        (["--runs", "3", "--duration-dist", "fixed:5", "--num-slots", "2", "--max-jobs", "1", "--policy", "lazy"], "--policy 'lazy'"),
        (["--runs", "3", "--duration-dist", "fixed:5", "--num-slots", "2", "--max-jobs", "1", "--replacement-lead", "soon"],
         "--replacement-lead 'soon'"),
    ]
    for args, expected in cases:
        result = runner.invoke(app, ["simulate", *args])
        assert result.exit_code == 2, (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("juqueue: ") and expected in lines[0], (args, lines)


def test_plot_without_matplotlib_says_how_to_get_it(monkeypatch, tmp_path: Path):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kw):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    result = runner.invoke(app, ["simulate", "--runs", "3", "--duration-dist", "fixed:5", "--num-slots", "2",
                                 "--max-jobs", "1", "--plot", str(tmp_path / "p.png")])
    assert result.exit_code == 2 and "pip install 'juqueue[plot]'" in result.stderr


# ---------------------------------------------------------------------- output
def test_json_shape_and_table():
    args = ["simulate", "--runs", "40", "--duration-dist", "uniform:lo=60,hi=600", "--num-slots", "4",
            "--max-jobs", "5", "--seed", "3"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["lower_bound_node_hours"] > 0 and data["runs"] == 40
    assert [p["name"] for p in data["policies"]] == ["idle", "original", "aggressive", "aggressive+minimize_jobs",
                                                     "aggressive+min_saturation"]
    for p in data["policies"]:
        assert {"name", "node_hours", "efficiency", "makespan_s", "moves", "lost_hours", "replacements",
                "wall_time_gap_mean_s", "wall_time_gap_max_s"} <= set(p)
        assert p["wall_time_gap_mean_s"] is None and p["replacements"] == 0  # no wall time
        assert 0 < p["efficiency"] <= 1.0 and p["node_hours"] >= data["lower_bound_node_hours"]
    table = runner.invoke(app, args)
    assert table.exit_code == 0 and "lower bound" in table.stdout and "aggressive+minimize_jobs" in table.stdout
    assert "wall gap" not in table.stdout  # no wall time, no wall-time columns
    one = json.loads(runner.invoke(app, [*args, "--json", "--policy", "idle"]).stdout)
    assert [p["name"] for p in one["policies"]] == ["idle"]


def test_def_dir_runs_with_durations(tmp_path: Path):
    defs = tmp_path / "defs"
    defs.mkdir()
    (defs / "clusters.yaml").write_text("a:\n  type: local\n  num_slots: 2\n  max_jobs: 2\n"
                                        "b:\n  type: slurm\n  num_slots: 4\n  max_jobs: 3\n  time: '02:00:00'\n")
    (defs / "sweep.yaml").write_text("experiment: sweep\ncluster: a\ncmd: [sleep, 1]\nruns:\n"
                                     "  - {id: x, duration: 10}\n  - {id: y, duration: '00:00:30'}\n  - {id: z}\n")
    with pytest.raises(SimulationInputError, match="1 of 3 runs of cluster 'a' have no duration.*sweep@z"):
        resolve(SimulateOptions(def_dir=defs))
    inputs = resolve(SimulateOptions(def_dir=defs, default_duration="20"))
    assert [(r.gid, r.duration_s, r.expected_s) for r in inputs.workload.runs] == [
        ("sweep@x", 10.0, 10.0), ("sweep@y", 30.0, 30.0), ("sweep@z", 20.0, None)]
    assert inputs.conditions.num_slots == 2 and inputs.conditions.wall_time_s is None
    other = resolve(SimulateOptions(def_dir=defs, cluster="b", runs="5", duration_dist="fixed:60"))
    assert other.conditions.wall_time_s == 7200.0 and other.conditions.signal_lead_s == 120.0


def test_csv_with_and_without_header(tmp_path: Path):
    (tmp_path / "plain.csv").write_text("10\n00:01:00\n")
    assert [r.duration_s for r in load_durations_csv(tmp_path / "plain.csv").runs] == [10.0, 60.0]
    (tmp_path / "full.csv").write_text("id,duration,expected,arrival,slots,movable\ne@a,10,,0,1,true\ne@b,20,15,5,2,false\n")
    runs = load_durations_csv(tmp_path / "full.csv").runs
    assert runs[1] == SimRun("e@b", 20.0, expected_s=15.0, arrival_s=5.0, movable=False, slots=2, experiment="e")
    (tmp_path / "bad.csv").write_text("duration,colour\n10,red\n")
    with pytest.raises(SimulationInputError, match="bad.csv line 1: unknown column 'colour'"):
        load_durations_csv(tmp_path / "bad.csv")


# ---------------------------------------------------------------------- a work dir's store
def _store_with_history(work: Path) -> None:
    """A store written by the real Store code: two nodes, three runs (one still running)."""
    from juqueue.store.engine import make_engine
    from juqueue.store.store import Store
    from juqueue.store.tables import AttemptRow, EventRow, NodeRow, RunRow

    engine = make_engine(None, work)
    store = Store(engine)
    t0 = 1_000_000.0
    with store.session() as s:
        s.add(NodeRow(name="n1", cluster="local", backend="local", token="t", state="gone", slots_total=2,
                      created_at=t0, started_at=t0, billed_from=t0, ended_at=t0 + 40))
        s.add(NodeRow(name="n2", cluster="local", backend="local", token="t", state="gone", slots_total=2,
                      created_at=t0 + 1, started_at=t0 + 6, billed_from=t0 + 6, ended_at=t0 + 30))
        for gid, spec in (("e@a", {"duration": 12}), ("e@b", {}), ("e@c", {})):
            s.add(RunRow(global_id=gid, experiment="e", run_id=gid[2:], cluster="local", status="completed",
                         spec_json=json.dumps(spec), queued_at=t0 - 5))
            s.add(EventRow(global_id=gid, ts=t0 - 5, kind="defined"))
        s.add(AttemptRow(global_id="e@a", number=1, node="n1", started_at=t0 + 2, ended_at=t0 + 14))
        s.add(AttemptRow(global_id="e@b", number=1, node="n1", started_at=t0 + 2, ended_at=t0 + 7, end_reason="interrupted"))
        s.add(AttemptRow(global_id="e@b", number=2, node="n2", started_at=t0 + 8, ended_at=t0 + 20))
        s.add(AttemptRow(global_id="e@c", number=1, node="n2", started_at=t0 + 9, ended_at=None))
        s.commit()
    engine.dispose()


def test_from_work_dir_reads_the_store(tmp_path: Path):
    work = tmp_path / "w"
    _store_with_history(work)
    before = {p: p.stat().st_mtime_ns for p in (work / ".juqueue").iterdir()}
    spec, workload = load_work_dir(work, None)
    assert spec is None  # no node.json files: the CLI then needs --num-slots/--max-jobs or --def-dir
    assert [(r.gid, r.duration_s, r.expected_s, r.arrival_s) for r in workload.runs] == [
        ("e@a", 12.0, 12.0, 0.0), ("e@b", 17.0, None, 0.0)]
    assert "1 run(s) without a finished attempt" in workload.note
    assert [(x.queue_s, x.boot_s) for x in workload.latencies] == [(0.0, 2.0), (5.0, 2.0)]
    assert {p: p.stat().st_mtime_ns for p in (work / ".juqueue").iterdir()} == before  # read-only
    result = runner.invoke(app, ["simulate", "--from-work-dir", str(work), "--num-slots", "2", "--max-jobs", "2", "--json",
                                 "--policy", "aggressive"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)["policies"]
    # Both runs start at 2 s on the first node (queue 0, boot 2); e@b ends at 19 s, e@a at 14 s.
    assert row["makespan_s"] == pytest.approx(19.0) and row["max_nodes"] == 1
    assert row["node_hours"] == pytest.approx(19.0 / 3600, abs=1e-4)
    missing = runner.invoke(app, ["simulate", "--from-work-dir", str(tmp_path / "nothing")])
    assert missing.exit_code == 2 and "no store there" in missing.stderr


def test_plot_draws_every_policy(tmp_path: Path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "p.png"
    result = runner.invoke(app, ["simulate", "--runs", "30", "--duration-dist", "uniform:lo=60,hi=600", "--num-slots", "4",
                                 "--max-jobs", "4", "--plot", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 1000 and f"plot: {out}" in result.stdout
