"""The live feed's deltas, built at ControllerState.commit over the real controller on fakes
(controller_fakes.py): nothing is built while nobody listens; with a listener each batch's
delta carries the changed runs in the runs list's shape, the changed nodes in NodeModel's
shape, counts that agree with the store, and a usage point; a reload sends `resync`."""

from __future__ import annotations

import asyncio
import json

import pytest

from controller_fakes import Harness, run_specs
from juqueue.api.models.nodes import NodeModel
from juqueue.api.routes.runs import run_to_dict
from juqueue.controller.feed_buffer import DELTA, RESYNC
from juqueue.definitions.models import ClusterSpec


@pytest.fixture()
def h(make) -> Harness:
    return make([ClusterSpec(name="c", type="local", num_slots=2, max_jobs=1)], run_specs(3, "c"))


@pytest.fixture()
def listening(h: Harness):
    loop = asyncio.new_event_loop()
    waiter, _ = h.controller.feed.buffer.subscribe(loop)
    yield h.controller.feed.buffer
    h.controller.feed.buffer.unsubscribe(waiter)
    loop.close()


def _messages(buf, after: int = 0) -> list[tuple[str, dict]]:
    got = buf.since(after)
    assert got.resync is None, got.resync
    return [(m.event, json.loads(m.data)) for m in got.messages]


def _start(h: Harness) -> str:
    h.step()  # a node is started
    node = h.nodes_of("c")[0]
    h.heartbeat(node)
    h.step()  # up: runs are placed on it
    return node


def test_nothing_is_built_without_a_listener(h: Harness):
    buf = h.controller.feed.buffer
    _start(h)
    assert buf.last > 0  # the ids moved on (a reconnecting client sees the gap) ...
    assert buf.since(0).resync is not None  # ... but no message was kept


def test_deltas_carry_changed_runs_nodes_counts_and_usage(h: Harness, listening):
    node = _start(h)
    for slot, a in enumerate(h.publisher.to_node(node)):
        h.started(a.global_id, slot=slot)
    h.step()
    msgs = _messages(listening)
    assert msgs and all(event == DELTA for event, _ in msgs)
    last = msgs[-1][1]
    running = [r for r in last["runs"] if r["status"] == "running"]
    assert len(running) == 2
    for r in running:  # exactly the runs list's shape and values, from memory
        assert r == run_to_dict(h.run(r["global_id"]))
    assert last["counts"] == {**dict.fromkeys(last["counts"], 0), **h.store.status_counts()}
    assert last["usage"]["c"]["slots_busy"] == 2
    nodes = [n for _, m in msgs for n in m["nodes"]]
    assert nodes and set(nodes[-1]) == set(NodeModel.model_fields)
    NodeModel.model_validate(nodes[-1])

    seen = listening.last
    gid = running[0]["global_id"]
    h.exited(gid, 0)
    h.heartbeat(node)  # an exit is final after the node's next heartbeat
    h.step()
    h.step()
    after = _messages(listening, seen)
    completed = [r for _, m in after for r in m["runs"] if r["global_id"] == gid]
    assert completed and completed[-1]["status"] == "completed"
    assert completed[-1] == run_to_dict(h.run(gid))
    assert after[-1][1]["counts"] == {**dict.fromkeys(after[-1][1]["counts"], 0), **h.store.status_counts()}


def test_reload_sends_resync(h: Harness, listening):
    _start(h)
    seen = listening.last
    from juqueue.definitions.models import LoadResult

    h.command(lambda: h.controller.apply_definitions(LoadResult(runs=run_specs(4, "c"))))
    assert RESYNC in [event for event, _ in _messages(listening, seen)]


def test_memory_rebuilt_from_the_store_sends_resync(h: Harness, listening):
    _start(h)
    seen = listening.last
    h.controller._rebuild()  # what the controller does once the store answers again after a failure
    assert [(e, d["reason"]) for e, d in _messages(listening, seen)] == [(RESYNC, "memory rebuilt from the store")]
