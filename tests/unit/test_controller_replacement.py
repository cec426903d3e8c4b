"""Wall time without a gap, as the controller carries it out (fakes: see controller_fakes.py).

A SLURM node with a 1-hour limit is warned `signal_lead` (120 s) before it; its replacement
is submitted `replacement_lead` (600 s) before the warning, takes the drained run at once, and
is neither idle nor surplus before the warning + `grace_period`.
"""

from __future__ import annotations

from controller_fakes import START_TIME, Harness, run_specs
from juqueue.definitions.models import ClusterSpec
from juqueue.status import NodeState, RunStatus, StopReason

LIMIT_S = 3_600.0
WARNING = START_TIME + LIMIT_S - 120  # the first node starts at START_TIME
LEAD = 600.0


def slurm(**kw: object) -> ClusterSpec:
    settings: dict[str, object] = {"num_slots": 1, "max_jobs": 2, "signal_lead": 120, "grace_period": 30,
                                   "replacement_lead": LEAD, "idle_timeout": 5, "consolidate_after": 10}
    settings.update(kw)
    return ClusterSpec(name="s", type="slurm", **settings)  # type: ignore[arg-type]


def at(h: Harness, when: float) -> None:
    """Clock to `when`: every live node shows life, then a beat tick."""
    h.clock.set(when)
    for node in h.nodes_of("s"):
        h.heartbeat(node)
    h.tick()


def one_running(make, spec: ClusterSpec, n_runs: int = 1, **run_fields: object) -> tuple[Harness, str]:
    h = make([spec], run_specs(n_runs, "s", **run_fields))
    h.backends["slurm"].time_limit_s = LIMIT_S
    h.step()
    (node,) = h.nodes_of("s")
    h.heartbeat(node)
    h.step()
    for i in range(n_runs):
        h.started(f"exp@r{i}", slot=i)
    h.step()
    return h, node


def test_a_replacement_starts_lead_before_the_warning_and_takes_the_drained_run_at_once(make):
    h, first = one_running(make, slurm())
    backend = h.backends["slurm"]
    at(h, WARNING - LEAD - 1)
    assert backend.start_calls == 1  # not yet
    at(h, WARNING - LEAD + 1)
    assert backend.start_calls == 2
    second = next(n for n in h.nodes_of("s") if n != first)
    row = h.node(second)
    assert (row.replaces, row.protected_until) == (first, WARNING + 30)
    assert "replacement" in h.event_kinds("exp@r0")
    h.heartbeat(second)  # the replacement is up, empty, well before the warning
    h.step()
    for when in (WARNING - 400, WARNING - 100, WARNING - 1):
        at(h, when)  # idle far past idle_timeout, above the target: still kept
        assert h.controller.nodes[second].state == NodeState.UP, when
    # The warning: the first node drains, its run is interrupted and goes to the replacement at once.
    h.clock.set(WARNING)
    h.heartbeat(first, draining=True)
    h.exited("exp@r0", 0, interrupted=True, reason="wall time")
    h.step()
    (att1, att2) = h.store.attempts_of("exp@r0")
    assert att1.stop_reason == StopReason.WALL_TIME.value
    assert (att2.node, h.status("exp@r0")) == (second, RunStatus.ASSIGNED.value)
    assert h.publisher.latest("exp@r0").node == second


def test_a_replacement_left_empty_goes_only_after_the_warning_plus_grace(make):
    h, first = one_running(make, slurm())
    at(h, WARNING - LEAD + 1)
    second = next(n for n in h.nodes_of("s") if n != first)
    h.heartbeat(second)
    h.step()
    h.clock.set(WARNING - 200)
    h.exited("exp@r0", 0)  # the run ended before the warning after all
    h.heartbeat(first)
    h.step()
    assert h.status("exp@r0") == RunStatus.COMPLETED.value
    at(h, WARNING + 29)
    assert h.controller.nodes[second].state == NodeState.UP
    at(h, WARNING + 31)
    at(h, WARNING + 40)
    assert second not in h.controller.nodes or h.controller.nodes[second].state != NodeState.UP


def test_no_replacement_for_runs_that_end_before_the_warning(make):
    h, _ = one_running(make, slurm(), duration=600)  # ends at START_TIME + 600, long before the warning
    at(h, WARNING - 10)
    assert h.backends["slurm"].start_calls == 1


def test_no_replacement_past_max_jobs(make):
    h, _ = one_running(make, slurm(max_jobs=1))
    at(h, WARNING - 10)
    assert h.backends["slurm"].start_calls == 1


def test_no_replacement_when_the_run_fits_on_another_node(make):
    h = make([slurm(num_slots=2, max_jobs=3, consolidation="idle")], run_specs(3, "s"))
    h.backends["slurm"].time_limit_s = LIMIT_S
    h.step()
    a, b = h.nodes_of("s")
    for node in (a, b):
        h.heartbeat(node)
    h.step()
    for gid in ("exp@r0", "exp@r1", "exp@r2"):
        h.started(gid)
    h.step()
    on = {n: sorted(h.controller.nodes[n].runs) for n in (a, b)}
    full, other = (a, b) if len(on[a]) == 2 else (b, a)
    h.controller.nodes[other].time_limit_at = WARNING + 10_000  # its warning is far off
    h.exited(on[full][1], 0)  # the warned node keeps one run; the other node has a free slot for it
    h.heartbeat(full)
    h.step()
    at(h, WARNING - 10)
    assert h.backends["slurm"].start_calls == 2


def test_a_restart_keeps_what_a_replacement_replaces_and_its_protection(make):
    h, first = one_running(make, slurm())
    at(h, WARNING - LEAD + 1)
    second = next(n for n in h.nodes_of("s") if n != first)
    h.restart(after_s=5)
    info = h.controller.nodes[second]
    assert (info.replaces, info.protected_until) == (first, WARNING + 30)
    at(h, WARNING - LEAD + 60)
    assert h.backends["slurm"].start_calls == 2  # not replaced twice
