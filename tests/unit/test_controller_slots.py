"""Slot-exact placement and runs that need k slots, as the controller carries them out (on the
fakes of controller_fakes.py): indices are never double-booked on a node, a k-slot run gets k
slots of one node (best fit), a k-slot run that fits no live node whole starts one, and that
node is not released as surplus. The worker's side: exactly the assigned slots, a slot in use
refused. The policy itself is tested in test_slot_placement.py."""

from __future__ import annotations

import json
import random


from controller_fakes import Harness, run_specs
from juqueue.definitions.models import ClusterSpec, LoadResult, RunSpec
from juqueue.definitions.validation import check_run_slots
from juqueue.events import REJECTED
from juqueue.status import NodeState, RunStatus

ASSIGNED, COMPLETED = RunStatus.ASSIGNED.value, RunStatus.COMPLETED.value


def cluster(**kw: object) -> ClusterSpec:
    settings: dict[str, object] = {"num_slots": 4, "max_jobs": 3, "consolidate_after": 10, "grace_period": 5,
                                   "idle_timeout": 600}
    settings.update(kw)
    return ClusterSpec(name="c", type="local", **settings)  # type: ignore[arg-type]


def big(run_id: str = "big", slots: int = 2, **kw: object) -> RunSpec:
    return RunSpec(experiment="exp", id=run_id, cluster="c", cmd=["true"], slots=slots, **kw)  # type: ignore[arg-type]


def live_slots(h: Harness) -> dict[str, dict[str, tuple[int, ...]]]:
    """node -> live run -> the slot indices of its latest assignment, checked against memory."""
    out: dict[str, dict[str, tuple[int, ...]]] = {}
    for name, node in h.controller.s.nodes.items():
        out[name] = {}
        for gid in node.runs:
            a = h.publisher.latest(gid)
            assert a is not None and a.node == name
            assert node.slot_of[gid] == a.slots
            out[name][gid] = a.slots
    return out


def assert_no_double_booking(h: Harness) -> None:
    for name, runs in live_slots(h).items():
        node = h.controller.s.nodes[name]
        indices = [i for slots in runs.values() for i in slots]
        assert len(indices) == len(set(indices)), (name, runs)
        assert all(0 <= i < node.slots_total for i in indices)
        for gid, slots in runs.items():
            assert len(slots) == h.controller.s.runs[gid].slots  # whole
        # status shows the same map
        (shown,) = [n for n in h.controller.nodes_snapshot() if n["name"] == name]
        expected = [None] * node.slots_total
        for gid, slots in runs.items():
            for i in slots:
                expected[i] = gid
        assert shown["slots"] == expected and shown["slots_used"] == len(indices)


def bring_up(h: Harness) -> None:
    for name in h.nodes_of("c"):
        h.heartbeat(name)
    h.step()


def test_slot_indices_are_never_double_booked_across_placements_and_ends(make):
    rng = random.Random(14)
    runs = run_specs(20, "c") + [big(f"b{i}", slots=rng.choice([2, 3])) for i in range(6)]
    h = make([cluster()], runs)
    h.step()
    bring_up(h)
    assert_no_double_booking(h)
    started: set[tuple[str, int]] = set()
    for _ in range(60):
        for a in h.publisher.published:
            if (a.global_id, a.attempt) not in started and h.status(a.global_id) == ASSIGNED:
                started.add((a.global_id, a.attempt))
                h.started(a.global_id, slot=a.slots[0])
        h.step()
        assert_no_double_booking(h)
        live = [g for runs_ in live_slots(h).values() for g in runs_]
        if not live:
            break
        for gid in rng.sample(live, k=min(len(live), rng.randint(1, 3))):
            h.exited(gid, 0)
        h.clock.advance(5)
        bring_up(h)  # the heartbeats make the exits final; placement follows in the same batch
        assert_no_double_booking(h)
    assert all(h.status(r.global_id) == COMPLETED for r in runs)
    # the store recorded every attempt's slots (and the first as `slot`)
    for r in runs:
        (att,) = h.store.attempts_of(r.global_id)
        assert len(json.loads(att.slots)) == r.slots and att.slot == json.loads(att.slots)[0]


def test_a_two_slot_run_is_placed_whole_and_the_store_and_status_show_its_slots(make):
    h = make([cluster(max_jobs=1)], [big("big", 2)] + run_specs(2, "c"))
    h.step()
    bring_up(h)
    a = h.publisher.latest("exp@big")
    assert a is not None and len(a.slots) == 2 and a.slots[1] == a.slots[0] + 1
    (att,) = h.store.attempts_of("exp@big")
    assert json.loads(att.slots) == list(a.slots) and att.slot == a.slots[0]
    (node,) = h.controller.nodes_snapshot()
    assert node["slots_used"] == 4 and node["slots"].count("exp@big") == 2 and None not in node["slots"]
    assert_no_double_booking(h)


def test_a_two_slot_run_gets_the_node_with_two_free_slots_not_the_ones_with_one(make):
    h = make([cluster(max_jobs=3)], run_specs(12, "c") + [RunSpec(experiment="z", id="big", cluster="c", cmd=["true"],
                                                                    slots=2)])
    h.step()
    bring_up(h)
    nodes = h.nodes_of("c")
    assert len(nodes) == 3 and h.status("z@big") == "queued"  # every slot is taken by the single runs
    on = {n: sorted(h.controller.s.nodes[n].runs) for n in nodes}
    for a in h.publisher.published:
        h.started(a.global_id, slot=a.slots[0])
    h.step()
    h.clock.advance(30)
    h.exited(on[nodes[0]][0])  # 1 free
    h.exited(on[nodes[1]][0])  # 1 free
    h.exited(on[nodes[2]][0])  # 2 free
    h.exited(on[nodes[2]][1])
    bring_up(h)
    a = h.publisher.latest("z@big")
    assert a is not None and a.node == nodes[2] and len(a.slots) == 2
    assert_no_double_booking(h)
    assert h.backends["local"].start_calls == 3


def test_an_unfit_two_slot_run_starts_a_node_that_is_not_released_as_surplus(make):
    runs = run_specs(8, "c") + [big("big", 2, depends_on=["exp@r0"])]
    h = make([cluster(max_jobs=3)], runs)
    h.step()
    bring_up(h)
    first = h.nodes_of("c")
    assert len(first) == 2 and h.backends["local"].start_calls == 2
    for a in h.publisher.published:
        h.started(a.global_id, slot=a.slots[0])
    h.step()
    h.clock.advance(30)
    other = next(g for g in sorted(h.controller.s.nodes[first[1]].runs) if g != "exp@r0")
    if "exp@r0" in h.controller.s.nodes[first[1]].runs:
        other = sorted(h.controller.s.nodes[first[0]].runs)[0]
    h.exited("exp@r0")  # big becomes ready: free slots 1 + 1, enough in total, none whole
    h.exited(other)
    bring_up(h)
    assert h.status("exp@big") == "queued"
    assert h.backends["local"].start_calls == 3  # a node started for it
    (new,) = [n for n in h.nodes_of("c") if n not in first]
    for _ in range(4):  # ticks: the new node is never surplus, never released
        h.clock.advance(5)
        for n in first:
            h.heartbeat(n)
        h.tick()
        assert new in h.controller.s.nodes and not h.controller.nodes_snapshot()[-1].get("stopping")
        assert new not in h.controller.s.surplus
        assert not any(node == new for node, cmd in h.publisher.controls if cmd["op"] == "shutdown")
        assert new not in [n for n, _, _ in h.backends["local"].stopped]
    h.heartbeat(new)
    h.step()
    a = h.publisher.latest("exp@big")
    assert a is not None and a.node == new and len(a.slots) == 2
    assert h.controller.s.nodes[new].state == NodeState.UP
    assert h.backends["local"].start_calls == 3  # and no further node
    assert_no_double_booking(h)


def test_a_run_needing_more_slots_than_its_cluster_has_is_a_definition_error_naming_it():
    runs = [RunSpec(experiment="e", id="huge", cluster="c", cmd=["true"], slots=5, source_file="e.yaml"),
            RunSpec(experiment="f", id="ok", cluster="c", cmd=["true"], slots=4, source_file="f.yaml")]
    result = check_run_slots(LoadResult(runs=runs, experiments={"e": "e.yaml", "f": "f.yaml"}), {"c": 4})
    assert [r.id for r in result.runs] == ["ok"] and result.failed_files == ["e.yaml"]
    assert result.failed_experiments == ["e"] and "e" not in result.experiments
    (err,) = result.errors
    assert err.run == "huge" and "run huge" in err.message and "num_slots: 4" in err.message
    assert RunSpec(experiment="e", id="x", cluster="c", cmd=["true"]).fingerprint() == \
        RunSpec(experiment="e", id="x", cluster="c", cmd=["true"], slots=1).fingerprint()
    assert RunSpec(experiment="e", id="x", cluster="c", cmd=["true"], slots=2).fingerprint() != \
        RunSpec(experiment="e", id="x", cluster="c", cmd=["true"]).fingerprint()


# ---- the worker's side ---------------------------------------------------------------------------
def test_the_worker_uses_exactly_the_assigned_slots_and_refuses_one_in_use(tmp_path, monkeypatch):
    import redis

    from juqueue.paths import WorkDir
    from juqueue.workers.attempt import LiveAttempt
    from juqueue.workers.runtime import NodeConfig, NodeRuntime
    from juqueue.workers.slots import slot_env

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3,4,5,6,7")
    spec = ClusterSpec(name="c", type="local", num_slots=4, cuda_devices_per_slot=2, cpus_per_slot=1)
    rt = NodeRuntime(WorkDir(tmp_path), NodeConfig(node="n1", token="t", namespace="ns", version="x", cluster=spec),
                     redis.Redis(host="127.0.0.1", port=1))
    extra, cpus = slot_env({"global_id": "e@r", "attempt": 1, "run_dir": "/r", "cuda": True}, (1, 2), rt.node, rt.cluster, rt.resources)
    assert extra["JUQUEUE_SLOT"] == "1" and extra["JUQUEUE_SLOTS"] == "1,2"
    assert extra["CUDA_VISIBLE_DEVICES"] == "2,3,4,5" and extra["OMP_NUM_THREADS"] == "2"
    emitted = []
    rt.emit = emitted.append  # type: ignore[method-assign]
    rt.live["e@other"] = LiveAttempt("e@other", 1, (2, 3))
    rt.run_attempt("e@r", 1, [1, 2])  # slot 2 is in use here: a duplicate, refused before any claim
    (ev,) = emitted
    assert ev.type == REJECTED and ev.global_id == "e@r" and "already in use" in ev.reason
    assert set(rt.live) == {"e@other"}


def test_a_k_slot_run_kept_waiting_by_the_hold_says_so_until_it_is_placed(make):
    """One node, no room to start another: a 2-slot run waits for 2 free slots of it, and the
    single runs behind it do not take the slot that came free meanwhile (the hold)."""
    runs = run_specs(4, "c") + [big("big", 2)] + run_specs(2, "c", experiment="later")
    h = make([cluster(max_jobs=1)], runs)
    h.step()
    bring_up(h)
    (node,) = h.nodes_of("c")
    for a in h.publisher.published:
        h.started(a.global_id, slot=a.slots[0])
    h.step()
    h.exited("exp@r0")  # one slot free: not enough for big; the runs behind it must not take it
    bring_up(h)
    row = h.run("exp@big")
    assert row.status == "queued" and row.reason == (
        f"waiting for free slots of one node: {node} takes no smaller run until 2 of its slots are free")
    assert h.publisher.latest("later@r0") is None
    h.exited("exp@r1")
    bring_up(h)
    row = h.run("exp@big")
    assert row.status == "assigned" and row.reason is None
    assert len(h.publisher.latest("exp@big").slots) == 2
