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
