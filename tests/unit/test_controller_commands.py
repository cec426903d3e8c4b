"""User commands run between batches: a command queued while the batch's commands run (the next
chunk of a large selection) waits for the next batch, so events are handled in between."""

from __future__ import annotations

from controller_fakes import build_harness, run_specs
from juqueue.controller.controller import _Command
from juqueue.definitions.models import ClusterSpec


def test_a_command_queued_meanwhile_runs_in_the_next_batch(tmp_path):
    h = build_harness(tmp_path, [ClusterSpec(name="local", type="local", num_slots=2)], run_specs(2, "local"))
    order: list[str] = []
    second = _Command(lambda: order.append("second"))

    def first() -> str:
        order.append("first")
        h.controller._commands.put(second)  # as the API thread does with the next chunk
        return "done"

    assert h.command(first) == "done"
    assert order == ["first"] and not second.future.done()
    h.step()
    assert order == ["first", "second"] and second.future.done()


def test_a_run_a_reload_queues_on_a_warm_node_is_placed_in_the_same_batch_after_it_was_queued(tmp_path):
    """queued_at and published_at come from the controller's one clock: the run is queued while the
    command runs (after the batch began) and published in that batch, never before it was queued."""
    from juqueue.definitions.models import LoadResult
    from juqueue.status import RunStatus

    cluster = ClusterSpec(name="local", type="local", num_slots=2, consolidation="idle", idle_timeout=3600)
    h = build_harness(tmp_path, [cluster], run_specs(1, "local"))
    h.step()
    (node,) = h.nodes_of("local")
    h.heartbeat(node)
    h.step()
    h.started("exp@r0")
    h.exited("exp@r0")
    h.heartbeat(node)  # an exit is final after a heartbeat taken after it
    h.step()
    assert h.status("exp@r0") == RunStatus.COMPLETED.value and h.nodes_of("local") == [node]  # warm, empty

    h.clock.advance(10.0)
    batch_began = h.clock.time()
    runs = run_specs(1, "local") + run_specs(1, "local", experiment="lat")

    def reload() -> dict:
        h.clock.advance(0.005)  # the command runs after the batch began
        return h.controller.apply_definitions(LoadResult(runs=runs, experiments={"exp": "exp.yaml", "lat": "lat.yaml"}))

    assert h.command(reload)["added"] == ["lat@r0"]
    run, (attempt,) = h.run("lat@r0"), h.store.attempts_of("lat@r0")
    assert run.status == RunStatus.ASSIGNED.value and attempt.node == node  # no tick, no node start needed
    assert run.queued_at == batch_began + 0.005  # the controller's clock, not the store's
    assert attempt.published_at >= run.queued_at > batch_began
