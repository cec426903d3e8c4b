"""Slot-exact placement of runs that need k slots (policy.slot_placement, policy.slot_demand)."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from juqueue.policy.scaling import ClusterLoad, nodes_to_start
from juqueue.policy.slot_demand import (_nodes_by_packing, demand_slots, needs_new_node, nodes_for_unplaced, run_slots_error,
                                       unplaced_runs)
from juqueue.policy.slot_placement import (Hold, NodeSlots, Placement, RunDemand, SlotPlan, assign_slots, pick_slots,
                                           plan_slots)


def node(name: str, total: int = 4, used: set[int] | frozenset[int] = frozenset(), **kw: object) -> NodeSlots:
    return NodeSlots(name, "c", total, frozenset(used), **kw)  # type: ignore[arg-type]


def run(name: str, slots: int = 1, devices: bool = False) -> RunDemand:
    return RunDemand(name, slots, devices)


def where(placements: list[Placement]) -> dict[str, tuple[str, tuple[int, ...]]]:
    return {p.run: (p.node, p.slots) for p in placements}


# ------------------------------------------------------------------ examples
def test_two_slot_run_gets_the_node_with_two_free_of_1_1_2() -> None:
    nodes = [node("a", used={0, 1, 2}), node("b", used={1, 2, 3}), node("d", used={0, 3})]
    assert where(assign_slots({"c": [run("big", 2)]}, nodes)) == {"big": ("d", (1, 2))}
    # with single-slot runs ahead of it in the queue, they take the 1-free nodes, not d
    out = where(assign_slots({"c": [run("s1"), run("s2"), run("big", 2)]}, nodes))
    assert out["big"] == ("d", (1, 2)) and {out["s1"][0], out["s2"][0]} == {"a", "b"}


def test_best_fit_leaves_the_fewest_stranded_slots() -> None:
    nodes = [node("four"), node("three", used={0}), node("two", used={0, 1})]
    assert where(assign_slots({"c": [run("r", 2)]}, nodes)) == {"r": ("two", (2, 3))}


def test_k_slot_and_single_runs_on_one_node_get_distinct_indices() -> None:
    out = where(assign_slots({"c": [run("s1"), run("big", 2), run("s2")]}, [node("n")]))
    assert out == {"big": ("n", (0, 1)), "s1": ("n", (2,)), "s2": ("n", (3,))}


def test_indices_avoid_used_slots_and_keep_blocks_compact() -> None:
    # free: 1, 3, 4 -> the 2-slot run takes the contiguous 3,4; the single takes 1
    out = where(assign_slots({"c": [run("s"), run("big", 2)]}, [node("n", 5, used={0, 2})]))
    assert out == {"big": ("n", (3, 4)), "s": ("n", (1,))}
    # no contiguous block: the lowest free indices
    assert where(assign_slots({"c": [run("big", 2)]}, [node("n", 4, used={1, 3})])) == {"big": ("n", (0, 2))}


def test_pick_slots() -> None:
    assert pick_slots([0, 1, 3], 1) == (3,)  # the smallest gap, keeping 0,1 whole
    assert pick_slots([0, 1, 3, 4, 5], 2) == (0, 1)
    assert pick_slots([5, 0, 2], 2) == (0, 2)
    assert pick_slots([0], 2) is None and pick_slots([], 1) is None


def test_node_near_its_wall_time_is_used_last() -> None:
    nodes = [node("old", used={0, 1, 2}, time_left_s=30), node("fresh", used={0}, time_left_s=3600)]
    assert where(assign_slots({"c": [run("r")]}, nodes, min_time_left_s=120))["r"][0] == "fresh"
    full = [node("old", used={0, 1, 2}, time_left_s=30), node("fresh", used={0, 1, 2, 3}, time_left_s=3600)]
    assert where(assign_slots({"c": [run("r")]}, full, min_time_left_s=120))["r"][0] == "old"


def test_surplus_nodes_last() -> None:
    nodes = [node("s", used={0, 1, 2}, surplus=True), node("k", used={0})]
    out = where(assign_slots({"c": [run("a"), run("b"), run("d"), run("e")]}, nodes))
    assert [out[r][0] for r in "abde"] == ["k", "k", "k", "s"]


def test_runs_needing_devices_never_go_to_no_devices_nodes() -> None:
    nodes = [node("cpu", used={0, 1}, no_devices=True), node("gpu")]
    out = where(assign_slots({"c": [run("g1", devices=True), run("p"), run("g2", 2, devices=True)]}, nodes))
    assert out["g1"][0] == "gpu" and out["g2"][0] == "gpu" and out["p"][0] == "cpu"
    assert assign_slots({"c": [run("g", devices=True)]}, [node("cpu", no_devices=True)]) == []


def test_only_accepting_nodes_of_the_cluster_take_runs() -> None:
    nodes = [node("draining", accepting=False), node("coming", starting=True), NodeSlots("other", "d", 4)]
    assert assign_slots({"c": [run("r")]}, nodes) == []


def test_a_single_gives_way_to_a_k_slot_run_that_needs_its_node() -> None:
    # the single goes to the fresh node first; the 2-slot run fits only there, so the single moves
    nodes = [node("fresh", used={0, 1}, time_left_s=9000), node("old", used={0, 1, 2}, time_left_s=10)]
    out = where(assign_slots({"c": [run("s"), run("big", 2)]}, nodes, min_time_left_s=60))
    assert out == {"big": ("fresh", (2, 3)), "s": ("old", (3,))}


def test_a_run_that_fits_nowhere_does_not_block_later_runs() -> None:
    nodes = [node("a", used={0, 1, 2}), node("b", used={0, 1, 2}), node("coming", starting=True)]
    plan = plan_slots({"c": [run("big", 2), run("s1"), run("s2")]}, nodes)
    assert where(list(plan.placements)) == {"s1": ("a", (3,)), "s2": ("b", (3,))}
    assert plan.holds == ()  # the starting node will take the big run


def test_a_blocked_big_run_holds_the_node_nearest_to_holding_it() -> None:
    nodes = [node("a", used={0, 1, 2}), node("b", used={0, 1}), node("full", used={0, 1, 2, 3})]
    plan = plan_slots({"c": [run("whole", 4), run("s1"), run("s2"), run("s3")]}, nodes)
    assert plan.holds == (Hold("c", "whole", "b"),)
    assert where(list(plan.placements)) == {"s1": ("a", (3,))}  # b's two free slots wait for `whole`
    # a run ahead of it in the queue is not held back; one behind it is
    plan = plan_slots({"c": [run("s0"), run("whole", 4), run("s1")]}, nodes)
    assert where(list(plan.placements)) == {"s0": ("a", (3,))}


def test_a_bigger_run_still_gives_way_after_a_smaller_one_fit_nowhere() -> None:
    # g2 fits nowhere (a is full, b has no devices, a starting node will take it: no hold);
    # gbig is bigger, so it may move the 4-slot `big` to b and take a, where g2 could not
    nodes = [node("a", 5), node("b", 5, no_devices=True), node("coming", 1, starting=True)]
    runs = [run("s"), run("big", 4), run("g1", devices=True), run("g2", devices=True), run("gbig", 4, devices=True)]
    plan = plan_slots({"c": runs}, nodes)
    assert where(list(plan.placements)) == {"s": ("b", (4,)), "big": ("b", (0, 1, 2, 3)), "g1": ("a", (4,)),
                                            "gbig": ("a", (0, 1, 2, 3))}
    assert plan.holds == ()


def test_reserved_slots_stay_free() -> None:
    out = assign_slots({"c": [run("big", 2), run("a")]}, [node("n", used={0})], reserved={"n": 1})
    assert where(out) == {"big": ("n", (1, 2))}  # 3 free, 1 promised to a moving run: `a` waits


def test_invalid_demand() -> None:
    with pytest.raises(ValueError, match="run e@r1: slots must be at least 1"):
        RunDemand("e@r1", 0)
    assert run_slots_error("e@r1", 3, "gpu", 4) is None
    assert run_slots_error("e@r1", 5, "gpu", 4) == ("run e@r1: slots: 5 but cluster gpu has num_slots: 4 "
                                                    "(a run's slots all come from one node)")
    for bad in (0, -1, True, 1.5, "2"):
        assert "run e@r1: slots must be a whole number" in (run_slots_error("e@r1", bad, "gpu", 4) or "")


# ------------------------------------------------------------------ demand for scaling
def test_demand_counts_slots() -> None:
    assert demand_slots([run("a", 2), run("b"), run("d", 3)]) == 6


def test_a_k_slot_run_that_fits_no_node_needs_one_even_when_free_slots_add_up() -> None:
    nodes = [node("a", used={0, 1, 2}), node("b", used={0, 1, 2})]
    assert needs_new_node([run("big", 2)], nodes)
    assert nodes_for_unplaced([run("big", 2)], nodes, 4) == 1
    assert not needs_new_node([run("s1"), run("s2")], nodes)
    # a starting node's slots count as coming capacity
    assert not needs_new_node([run("big", 2)], nodes + [node("coming", starting=True)])
    # best fit decreasing over whole runs: 3+3+2+2 on 4-slot nodes needs 3, not ceil(10/4)
    runs = [run("a", 2), run("b", 3), run("d", 2), run("e", 3)]
    assert nodes_for_unplaced(runs, [], 4) == 3
    assert unplaced_runs(runs, [node("n")]) == [run("b", 3), run("e", 3)]  # a and d fill n
    assert nodes_for_unplaced([run("huge", 9)], [], 4) == 0  # a definition error, not demand


def test_unfit_nodes_start_even_when_free_slots_add_up_or_a_surplus_node_has_room() -> None:
    load = ClusterLoad(ready_queued=2, num_slots=4, max_jobs=5, free_slots_accepting=2, live_nodes=2,
                       accepting_nodes=2, unfit_nodes=1)
    assert nodes_to_start(load) == 1
    assert nodes_to_start(load, target=3) == 1
    assert nodes_to_start(load, target=2) == 0  # the target still caps
    surplus = ClusterLoad(ready_queued=2, num_slots=4, max_jobs=5, free_slots_accepting=0, live_nodes=2,
                          accepting_nodes=2, surplus_free_slots=1, unfit_nodes=1)
    assert nodes_to_start(surplus, target=4) == 1
    assert nodes_to_start(ClusterLoad(2, 4, 2, 0, 2, unfit_nodes=3)) == 0  # never past max_jobs


# ------------------------------------------------------------------ properties
CLUSTERS = ["c", "d"]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[dict[str, list[RunDemand]], list[NodeSlots], float, dict[str, int]]:
    nodes, reserved = [], {}
    for i in range(draw(st.integers(0, 6))):
        total = draw(st.integers(1, 6))
        used = draw(st.frozensets(st.integers(0, total + 1), max_size=total))  # may name an index out of range
        nodes.append(NodeSlots(
            f"n{i}", draw(st.sampled_from(CLUSTERS)), total, used,
            accepting=draw(st.integers(0, 5)) > 0, starting=draw(st.integers(0, 7)) == 0,
            time_left_s=draw(st.none() | st.integers(0, 600).map(float)), surplus=draw(st.integers(0, 3)) == 0,
            no_devices=draw(st.integers(0, 3)) == 0,
        ))
        if draw(st.integers(0, 3)) == 0:
            reserved[f"n{i}"] = draw(st.integers(0, 3))
    queued: dict[str, list[RunDemand]] = {}
    count = 0
    for cluster in draw(st.lists(st.sampled_from(CLUSTERS), unique=True)):
        runs = []
        for _ in range(draw(st.integers(0, 12))):
            runs.append(RunDemand(f"r{count}", draw(st.sampled_from([1, 1, 1, 2, 2, 3, 4, 7])), draw(st.booleans())))
            count += 1
        queued[cluster] = runs
    return queued, nodes, draw(st.sampled_from([0.0, 100.0])), reserved


def _remaining(plan: SlotPlan, nodes: list[NodeSlots], reserved: dict[str, int]) -> dict[str, int]:
    left = {n.name: len(n.free_slots) - reserved.get(n.name, 0) for n in nodes}
    for p in plan.placements:
        left[p.node] -= len(p.slots)
    return left


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_slots_are_never_double_booked_and_runs_never_split(scenario) -> None:
    queued, nodes, min_left, reserved = scenario
    plan = plan_slots(queued, nodes, min_left, reserved)
    by_name = {n.name: n for n in nodes}
    demand = {r.run: (cluster, r) for cluster, runs in queued.items() for r in runs}
    assert len({p.run for p in plan.placements}) == len(plan.placements)
    taken: dict[str, set[int]] = {}
    for p in plan.placements:
        cluster, r = demand[p.run]
        n = by_name[p.node]
        assert len(p.slots) == r.slots == len(set(p.slots)) and list(p.slots) == sorted(p.slots)
        assert all(0 <= s < n.slots_total and s not in n.used for s in p.slots)
        assert not taken.setdefault(p.node, set()) & set(p.slots)
        taken[p.node] |= set(p.slots)
        assert n.cluster == cluster and n.accepting and not n.starting
        assert not (r.needs_devices and n.no_devices)
    for name, slots in taken.items():
        n = by_name[name]
        assert len(n.used & set(range(n.slots_total))) + len(slots) + reserved.get(name, 0) <= n.slots_total


def _shrunk_giving_way_case() -> tuple[dict[str, list[RunDemand]], list[NodeSlots], float, dict[str, int]]:
    """Hypothesis's shrunk counterexample: r7 waited because the 1-slot r3 fit nowhere,
    though r7 could move the 4-slot r1 from n2 to n3."""
    def coming(name: str, devices: bool) -> NodeSlots:
        return NodeSlots(name, "c", 1, accepting=False, starting=True, surplus=True, no_devices=not devices)
    runs = [RunDemand("r0", 1), RunDemand("r1", 4)] + [RunDemand(f"r{i}", 1, True) for i in range(2, 7)]
    nodes = [coming("n0", False), coming("n1", True), NodeSlots("n2", "c", 5, surplus=True),
             NodeSlots("n3", "c", 5, surplus=True, no_devices=True), coming("n4", False), coming("n5", False)]
    return {"c": runs + [RunDemand("r7", 4, True)]}, nodes, 0.0, {"n0": 0, "n5": 0}


@settings(max_examples=400, deadline=None)
@given(scenarios())
@example(_shrunk_giving_way_case())
def test_a_smaller_run_never_keeps_the_last_slots_a_waiting_bigger_run_needs(scenario) -> None:
    """No unplaced run W would fit on a node n if one run S placed there in this call (with
    S no bigger than W; a single-slot S is the issue's case) moved to another node m with
    room. For runs queued after a hold's holder, the held node is no room."""
    queued, nodes, min_left, reserved = scenario
    plan = plan_slots(queued, nodes, min_left, reserved)
    left = _remaining(plan, nodes, reserved)
    placed = {p.run: p.node for p in plan.placements}
    by_name = {n.name: n for n in nodes}
    for cluster, runs in queued.items():
        live = [n for n in nodes if n.cluster == cluster and n.accepting and not n.starting]
        holder = {h.run: h.node for h in plan.holds if h.cluster == cluster}
        for i, w in enumerate(runs):
            if w.run in placed:
                continue
            held = [holder[r.run] for r in runs[:i] if r.run in holder]
            for s in (r for r in runs if r.run in placed and r.slots <= w.slots):
                n = by_name[placed[s.run]]
                if (w.needs_devices and n.no_devices) or n.name in held or left[n.name] + s.slots < w.slots:
                    continue
                rooms = [m.name for m in live if m.name not in (n.name, *held) and left[m.name] >= s.slots
                         and not (s.needs_devices and m.no_devices)]
                assert not rooms, f"{s.run} on {n.name} could move to {rooms} for {w.run}"


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_queue_order_and_holds(scenario) -> None:
    """A run never overtakes an earlier run of its cluster that needs no more slots and no
    devices; a held node takes no run queued after its holder, which fits nowhere."""
    queued, nodes, min_left, reserved = scenario
    plan = plan_slots(queued, nodes, min_left, reserved)
    placed = {p.run: p.node for p in plan.placements}
    for cluster, runs in queued.items():
        for i, a in enumerate(runs):
            if a.run in placed or a.needs_devices:
                continue
            assert not [b.run for b in runs[i + 1:] if b.run in placed and b.slots >= a.slots]
    left = _remaining(plan, nodes, reserved)
    assert len({h.cluster for h in plan.holds}) == len(plan.holds)
    for h in plan.holds:
        runs = queued[h.cluster]
        pos = next(i for i, r in enumerate(runs) if r.run == h.run)
        holder = runs[pos]
        assert holder.run not in placed
        assert not [r.run for r in runs[pos + 1:] if placed.get(r.run) == h.node]
        assert not [n.name for n in nodes if n.cluster == h.cluster and n.accepting and not n.starting
                    and left[n.name] >= holder.slots and not (holder.needs_devices and n.no_devices)]


@settings(max_examples=300, deadline=None)
@given(scenarios(), st.integers(1, 6))
def test_demand_helpers_agree_with_placement(scenario, num_slots) -> None:
    """Every ready run that fits a node of the cluster now is placed there unless earlier runs
    took the room; the new nodes counted hold the unplaced runs' slots."""
    queued, nodes, _, reserved = scenario
    for cluster, runs in queued.items():
        mine = [n for n in nodes if n.cluster == cluster]
        unplaced = unplaced_runs(runs, mine, reserved)
        assert needs_new_node(runs, mine, reserved) == bool(unplaced)
        fitting = [r for r in unplaced if r.slots <= num_slots]
        count = nodes_for_unplaced(runs, mine, num_slots, reserved)
        assert count * num_slots >= demand_slots(fitting) and (count == 0) == (not fitting)
        # the arithmetic for one-slot runs is what the packing gives
        ones = [RunDemand(r.run, 1) for r in runs]
        assert nodes_for_unplaced(ones, mine, num_slots, reserved) == _nodes_by_packing(ones, mine, num_slots, reserved)
        # with every accepting or starting node taking runs now, placement leaves the same runs
        # waiting, unless it holds a node for one of them (scale-out counts without holds)
        now = [NodeSlots(n.name, n.cluster, n.slots_total, n.used, True, False, n.time_left_s, n.surplus, n.no_devices)
               for n in mine if n.accepting or n.starting]
        plan = plan_slots({cluster: runs}, now, 0.0, reserved)
        if not plan.holds:
            assert {p.run for p in plan.placements} == {r.run for r in runs} - {r.run for r in unplaced}
