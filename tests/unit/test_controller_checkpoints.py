"""The controller with checkpoints its workers report and with its queue order, on fakes
(controller_fakes.py): a reported checkpoint is stored on the attempt and decides which run a
consolidation moves; ready runs are published by priority, longest known duration, then
definition order."""

from __future__ import annotations

from controller_fakes import Harness, run_specs
from juqueue.definitions.models import ClusterSpec, RunSpec
from juqueue.events import HEARTBEAT, Event, checkpoint_entry
from juqueue.status import RunStatus
from juqueue.version import __version__
from test_controller_consolidation import cluster, first_move, seed

RUNNING = RunStatus.RUNNING.value


def heartbeat_with_checkpoints(h: Harness, node: str, checkpoints: dict[str, float]) -> None:
    """The node's heartbeat, listing the mtime of each of its runs' checkpoint files."""
    listed = sorted(h.worker_running.get(node, ()))
    items = [checkpoint_entry(gid, h.publisher.latest(gid).attempt, at) for gid, at in checkpoints.items()]  # type: ignore[union-attr]
    h.push(Event(type=HEARTBEAT, node=node, ts=h.clock.time(), running=listed, version=__version__, checkpoints=items))


def test_the_run_with_the_freshest_reported_checkpoint_is_moved_first(make):
    """Four nodes, one long run each (all among the cluster's oldest, so the cheapest goes): the
    run that checkpointed last loses least, whatever its checkpoint_interval would suggest."""
    h, long = seed(make, cluster(checkpoint_interval=3600))
    start = h.clock.time() - 60
    at = dict(zip(sorted(long), (start + 10, start + 50, start + 30, start + 20)))
    for node, gid in long.items():
        heartbeat_with_checkpoints(h, node, {gid: at[node]})
    h.step()
    freshest = max(long, key=at.__getitem__)
    for node, gid in long.items():
        (attempt,) = h.store.attempts_of(gid)
        assert attempt.last_checkpoint_at == at[node]  # stored on the attempt
    run, source, _to = first_move(h)
    assert (run, source) == (long[freshest], freshest)
    (moved,) = [e for e in h.store.events_of(run) if e.kind == "moved"]
    lost = moved.ts - at[freshest]  # since its checkpoint, not since its start (restart_cost 0)
    assert f"expects to lose {lost:.0f} s of work" in (moved.detail or "")


def test_an_older_or_foreign_report_changes_nothing_and_a_new_attempt_starts_without_one(make):
    h = make([cluster(num_slots=1, max_jobs=1)], run_specs(1, "c"))
    h.step()
    (node,) = h.nodes_of("c")
    h.heartbeat(node)
    h.step()
    h.started("exp@r0")
    h.step()
    heartbeat_with_checkpoints(h, node, {"exp@r0": 1_010.0})
    h.step()
    heartbeat_with_checkpoints(h, node, {"exp@r0": 1_005.0})  # older: a re-read entry
    h.push(Event(type=HEARTBEAT, node=node, ts=h.clock.time(), running=["exp@r0|1"], version=__version__,
                 checkpoints=[checkpoint_entry("exp@r0", 7, 1_020.0), "garbage"]))  # another attempt's
    h.step()
    assert h.controller.s.runs["exp@r0"].checkpoint_at == 1_010.0
    assert h.store.attempts_of("exp@r0")[0].last_checkpoint_at == 1_010.0
    h.exited("exp@r0", 1, interrupted=True, reason="node stopping")
    h.step()
    assert h.controller.s.runs["exp@r0"].checkpoint_at is None  # the next attempt reports its own


def _published(h: Harness) -> list[str]:
    return [a.global_id for a in h.publisher.published]


def test_ready_runs_start_by_priority_then_longest_duration_then_definition_order(make):
    runs = [RunSpec(experiment="b", id="plain", cluster="c", cmd=["true"]),
            RunSpec(experiment="b", id="short", cluster="c", cmd=["true"], duration=60),
            RunSpec(experiment="z", id="urgent", cluster="c", cmd=["true"], priority=2),
            RunSpec(experiment="a", id="late", cluster="c", cmd=["true"]),
            RunSpec(experiment="b", id="long", cluster="c", cmd=["true"], duration=3600),
            RunSpec(experiment="a", id="low", cluster="c", cmd=["true"], priority=-1)]
    h = make([cluster(num_slots=1, max_jobs=1)], runs)
    h.step()
    (node,) = h.nodes_of("c")
    h.heartbeat(node)
    h.step()
    order = []
    for _ in runs:
        (gid,) = [g for g in _published(h) if g not in order]
        order.append(gid)
        h.started(gid)
        h.step()
        h.exited(gid, 0)
        h.heartbeat(node)
        h.step()
    # without priority and duration: definition order (b@plain before a@late), not alphabetical
    assert order == ["z@urgent", "b@long", "b@short", "b@plain", "a@late", "a@low"]


def test_runs_queued_together_start_in_definition_order_not_alphabetically(make):
    h = make([cluster(num_slots=12, max_jobs=1)], run_specs(12, "c"))
    h.step()
    (node,) = h.nodes_of("c")
    h.heartbeat(node)
    h.step()
    assert _published(h) == [f"exp@r{i}" for i in range(12)]  # r2 before r10
