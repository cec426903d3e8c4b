"""Queue order (policy.queue_order): priority, then the longest known duration first, then queued
time, then definition order; the controller's RunQueue keeps its ready runs in that order."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from juqueue.controller.records import RunState, traits_of
from juqueue.controller.run_queue import RunQueue
from juqueue.policy.queue_order import ordered_head, queue_key
from juqueue.status import RunStatus

runs_st = st.lists(
    st.tuples(st.integers(-2, 2), st.one_of(st.none(), st.sampled_from([10.0, 60.0, 3600.0])),
              st.sampled_from([100.0, 200.0]), st.integers(0, 5)),
    max_size=30)


def _reference(entries: list[tuple[int, float | None, float, int]]) -> list[int]:
    """The rule in words, per priority class: known durations longest first, then the rest in
    queue order (queued time, definition order, then position)."""
    out: list[int] = []
    for prio in sorted({e[0] for e in entries}, reverse=True):
        same = [i for i, e in enumerate(entries) if e[0] == prio]
        known = sorted((i for i in same if entries[i][1] is not None),
                       key=lambda i: (-entries[i][1], entries[i][2], entries[i][3], i))  # type: ignore[operator]
        unknown = sorted((i for i in same if entries[i][1] is None), key=lambda i: (entries[i][2], entries[i][3], i))
        out += known + unknown
    return out


@given(runs_st, st.integers(0, 35))
@settings(max_examples=200, deadline=None)
def test_ordered_head_follows_the_rule(entries, n):
    items = list(range(len(entries)))
    head = ordered_head(items, n, lambda i: queue_key(entries[i][0], entries[i][1], entries[i][2], entries[i][3]))
    assert head == _reference(entries)[:n]


@given(st.lists(st.tuples(st.sampled_from([100.0, 200.0]), st.integers(0, 5)), max_size=30))
@settings(max_examples=100, deadline=None)
def test_without_priority_or_duration_first_queued_first_then_definition_order(entries):
    items = list(range(len(entries)))
    head = ordered_head(items, len(items), lambda i: queue_key(queued_at=entries[i][0], def_order=entries[i][1]))
    assert head == sorted(items, key=lambda i: (entries[i], i))


def test_priority_beats_duration_and_unknown_durations_keep_queue_order():
    keys = {"low-long": queue_key(0, 7200.0, 1.0), "high": queue_key(5, None, 9.0), "unknown-a": queue_key(0, None, 1.0, 1),
            "unknown-b": queue_key(0, None, 1.0, 0), "short": queue_key(0, 60.0, 0.5)}
    assert ordered_head(list(keys), 10, keys.__getitem__) == ["high", "low-long", "short", "unknown-b", "unknown-a"]
    assert ordered_head(list(keys), 0, keys.__getitem__) == []


def _run(gid: str, queued_at: float, def_order: int | None = None, **spec: object) -> RunState:
    experiment, run_id = gid.split("@")
    return RunState(gid, experiment, run_id, "c", RunStatus.QUEUED, 0, traits_of(json.dumps(spec)), (), 0, 0,
                    queued_at=queued_at, def_order=def_order)


def test_run_queue_orders_ready_runs_by_their_keys_and_forgets_removed_ones():
    q = RunQueue()
    runs = [_run("b@x", 1.0, 0), _run("a@y", 1.0, 1), _run("a@z", 2.0, 0), _run("a@p", 3.0, 5, priority=1),
            _run("c@long", 3.0, 2, duration=3600)]
    for r in runs:
        q.add_ready(r.gid, r.cluster, r.slots, r.queue_key())
    assert q.head("c", 10) == ["a@p", "c@long", "b@x", "a@y", "a@z"]
    q.remove("c@long")
    q.add_ready("b@x", "c", 1, _run("b@x", 4.0, 0).queue_key())  # requeued: queued anew
    assert q.head("c", 10) == ["a@p", "a@y", "a@z", "b@x"]
    assert q.head("c", 2) == ["a@p", "a@y"] and q.ready_count("c") == 4


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 9), st.integers(0, 3)), max_size=120))
@settings(max_examples=150, deadline=None)
def test_run_queue_head_equals_a_sorted_model_under_any_adds_and_removes(ops):
    """Stale entries, re-adds and compactions never change what head() returns."""
    q = RunQueue()
    model: dict[str, tuple] = {}
    seq = 0
    for add, i, key in ops:
        gid = f"e@{i}"
        if add:
            seq += 1
            q.add_ready(gid, "c", 1, (key,))
            model[gid] = ((key,), seq)
        else:
            q.remove(gid)
            model.pop(gid, None)
        assert q.head("c", len(model) + 1) == sorted(model, key=model.__getitem__)
        assert q.ready_count("c") == len(model)
