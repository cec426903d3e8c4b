"""The overview's view of the controller (`juqueue.controller.status_view`): published by the
controller thread at commit, read by the API without waiting for that thread; rebuilt when
something changed or a reader asked, at most every `min_interval_s`, and at once after a command.
Over the real controller on fakes (controller_fakes.py) and a real SQLite store."""

from __future__ import annotations

import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from controller_fakes import build_harness, run_specs
from juqueue.api.app import create_app
from juqueue.api.context import AppContext
from juqueue.controller.status_view import StatusView, StatusViews
from juqueue.definitions.models import ClusterSpec
from juqueue.status import NodeState

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's note on httpx
    from fastapi.testclient import TestClient

TOKEN = "t" * 32
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _start_loop(c) -> None:  # type: ignore[no-untyped-def]
    """`Controller.start` without its recovery (which, at a start, takes the fake local nodes of
    this harness for ones an earlier server left): publish the view, run the loop's thread."""
    c.views.publish()
    c._thread = threading.Thread(target=c._loop, name="juqueue-controller", daemon=True)
    c._thread.start()


def _stop_loop(c) -> None:  # type: ignore[no-untyped-def]
    """End the controller's loop without `shutdown` (which waits for the fake nodes to exit)."""
    c._stop.set()
    c._thread.join(30)
    assert not c._thread.is_alive()


def _view(n: int) -> StatusView:
    return StatusView([{"n": n}], {}, [], {}, {}, {})


def test_view_is_rebuilt_when_changed_or_asked_at_most_every_interval_and_at_once_after_a_command() -> None:
    now, built = [0.0], []

    def build() -> StatusView:
        built.append(now[0])
        return _view(len(built))

    views = StatusViews(build, min_interval_s=0.5, clock=lambda: now[0])
    views.publish()
    views.after_commit(changed=False)  # nothing changed, nobody asked
    now[0] = 10.0
    views.after_commit(changed=False)
    assert built == [0.0]
    views.after_commit(changed=True)  # a batch changed something: rebuilt (the last one is old)
    now[0] = 10.2
    views.after_commit(changed=True)  # again, but within the interval: later
    assert built == [0.0, 10.0]
    now[0] = 10.6
    views.after_commit(changed=False)  # the change left pending is built now
    assert built == [0.0, 10.0, 10.6]
    now[0] = 20.0
    assert views.latest().nodes == [{"n": 3}]  # type: ignore[union-attr]
    views.after_commit(changed=False)  # a reader asked: rebuilt at the next commit
    now[0] = 20.1
    views.wanted_now()  # a user command ran: rebuilt at its commit, interval or not
    views.after_commit(changed=False)
    assert built == [0.0, 10.0, 10.6, 20.0, 20.1]


def test_a_view_that_cannot_be_built_leaves_the_last_one() -> None:
    calls = []

    def build() -> StatusView:
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("boom")
        return _view(1)

    views = StatusViews(build, min_interval_s=0.0)
    first = views.publish()
    views.after_commit(changed=True)  # raises inside: logged, the batch is committed already
    assert views.latest() is first and len(calls) == 2


def test_status_read_does_not_wait_while_the_controller_thread_is_busy(tmp_path: Path) -> None:
    """A command holds the controller thread; /api/status, /api/nodes and /api/experiments answer
    meanwhile from the published view. Were they to ask the thread, the command would never be
    released and would fail."""
    spec = ClusterSpec(name="c", type="local", num_slots=2, max_jobs=2)
    h = build_harness(tmp_path, [spec], run_specs(4, "c"))
    h.step()  # nodes started for the queued runs
    for node in h.nodes_of("c"):
        h.heartbeat(node)
    h.step()
    c = h.controller
    ctx = AppContext(store=h.store, controller=c, token=TOKEN, work=c.config.work, clusters=lambda: {"c": spec},
                     port=0, reload=lambda **kw: {}, request_stop=lambda cancel: {})
    _start_loop(c)
    entered, release = threading.Event(), threading.Event()

    def busy() -> str:
        entered.set()
        assert release.wait(30), "the API waited for the controller thread"
        return "done"

    try:
        with ThreadPoolExecutor(1) as pool, TestClient(create_app(ctx)) as client:
            pending = pool.submit(c.call, busy)
            assert entered.wait(30)
            status = client.get("/api/status", headers=AUTH)
            nodes = client.get("/api/nodes", headers=AUTH)
            experiments = client.get("/api/experiments", headers=AUTH)
            release.set()
            assert pending.result(30) == "done"
    finally:
        release.set()
        _stop_loop(c)
    assert status.status_code == nodes.status_code == experiments.status_code == 200
    names = sorted(n["name"] for n in nodes.json() if n["live"])
    assert len(names) == 2 and names == sorted(n["name"] for n in status.json()["clusters"][0]["nodes"])
    assert status.json()["counts"]["queued"] + status.json()["counts"]["assigned"] == 4
    assert [e["name"] for e in experiments.json()] == ["exp"]


def test_a_command_is_seen_by_the_next_read(tmp_path: Path) -> None:
    """What a user command did (a node drained) shows in the view read right after it."""
    spec = ClusterSpec(name="c", type="local", num_slots=2, max_jobs=2)
    h = build_harness(tmp_path, [spec], run_specs(4, "c"))
    h.step()
    for node in h.nodes_of("c"):
        h.heartbeat(node)
    h.step()
    c = h.controller
    _start_loop(c)
    try:
        name = sorted(n["name"] for n in c.status_view().nodes)[0]
        c.call(lambda: c.drain_node(name, "by hand"))
        drained = next(n for n in c.status_view().nodes if n["name"] == name)
    finally:
        _stop_loop(c)
    assert drained["state"] == "draining" and drained["drained_by_user"]


def test_a_node_that_ended_in_the_batch_is_not_in_the_view(tmp_path: Path) -> None:
    """The view is built at commit, before ended nodes leave memory: it shows only live ones."""
    spec = ClusterSpec(name="c", type="local", num_slots=2, max_jobs=2)
    h = build_harness(tmp_path, [spec], run_specs(4, "c"))
    h.step()
    names = sorted(h.controller.s.nodes)
    assert len(names) == 2
    h.controller.s.nodes[names[0]].state = NodeState.GONE  # as node_gone leaves it until the commit's end
    assert [n["name"] for n in h.controller.build_status_view().nodes] == names[1:]
