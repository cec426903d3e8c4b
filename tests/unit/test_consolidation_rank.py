"""The surplus found without ranking every node (consolidation_rank) is exactly the first
`excess` nodes by surplus_rank, also when the same node objects are planned over again later
(their lost-work bounds kept on them), and medians in the cluster snapshot plan as medians
resolved on each run. The simulator's placement order with durations known: longest first."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from juqueue.policy.consolidation import plan_cluster, surplus_rank
from juqueue.policy.consolidation_cost import oldest_runs
from juqueue.policy.consolidation_model import ClusterSettings, ClusterSnapshot, NodeSnapshot, RunOnNode
from juqueue.policy.consolidation_rank import cheapest_surplus, lost_lower_bound
from juqueue.simulate.dispatch import ready_head
from juqueue.simulate.state import ReadyQueue, RunState
from juqueue.simulate.workload import SimRun


def _run(rng: random.Random, node: int, i: int, now: float) -> RunOnNode:
    start = now - rng.choice([rng.uniform(0, 600), rng.uniform(0, 30_000)])
    kind = rng.randrange(5)
    return RunOnNode(f"n{node:03d}r{i}", start, slots=rng.choice([1, 1, 1, 2]), movable=rng.randrange(8) > 0,
                     moved_at=start if rng.randrange(4) == 0 else None,
                     expected_duration_s=rng.choice([None, rng.uniform(600, 20_000)]),
                     last_checkpoint_at=start + rng.uniform(0, now - start) if kind == 0 else None,
                     checkpoint_interval_s=[3600.0, 3600.0, None, 0.0, 900.0][kind],
                     restart_cost_s=rng.choice([0.0, 300.0]), checkpoint_on_term=rng.randrange(10) == 0,
                     resumed=rng.randrange(3) == 0, experiment="e")


def _nodes(rng: random.Random, now: float, count: int) -> list[NodeSnapshot]:
    nodes = []
    for n in range(count):
        runs = () if rng.randrange(8) == 0 else tuple(_run(rng, n, i, now) for i in range(rng.randint(1, 3)))
        nodes.append(NodeSnapshot(f"n{n:03d}", 4, started_at=None if not runs and rng.randrange(2) else now - 40_000,
                                  time_limit_at=rng.choice([None, now + rng.uniform(-100, 40_000)]), runs=runs,
                                  reserved_slots=1 if rng.randrange(10) == 0 else 0))
    return nodes


@pytest.mark.parametrize("seed", range(12))
def test_cheapest_surplus_is_the_sorted_front_also_later_with_the_same_objects(seed: int) -> None:
    rng = random.Random(seed)
    now = 100_000.0
    settings = ClusterSettings(4, 100, consolidate_after_s=60.0, move_cooldown_s=300.0)
    nodes = _nodes(rng, now, 60)
    for step in range(8):  # the same objects, planned over again as time goes on (bounds kept on them)
        now += rng.choice([2.0, 30.0, 700.0, 3600.0])
        oldest = oldest_runs(nodes, 4)
        for excess in (1, 3, 10, 59):
            def rank(n: NodeSnapshot) -> tuple:
                return surplus_rank(n, settings, now, oldest)
            want = [n.name for n in sorted(nodes, key=rank)[:excess]]
            got = [n.name for n in cheapest_surplus(nodes, excess, rank, settings.consolidate_after_s, now)]
            assert got == want, (seed, step, excess)
        fresh = [replace(n) for n in nodes]  # no memo: the exact value
        for kept, new in zip(nodes, fresh):
            assert lost_lower_bound(kept, now, 60.0) <= lost_lower_bound(new, now, 60.0)


def test_oldest_runs_found_through_first_runs_equal_all_runs_sorted() -> None:
    rng = random.Random(7)
    nodes = _nodes(rng, 50_000.0, 40)
    runs = sorted((r for n in nodes for r in n.runs), key=lambda r: (r.attempt_started_at, r.gid))
    want, used = set(), 0
    for r in runs[:4]:
        if used + r.slots > 4:
            break
        want.add(r.gid)
        used += r.slots
    assert oldest_runs(nodes, 4) == want


def test_medians_in_the_cluster_snapshot_plan_as_medians_on_each_run() -> None:
    rng = random.Random(3)
    now = 100_000.0
    nodes = [replace(n, runs=tuple(replace(r, expected_duration_s=None) for r in n.runs)) for n in _nodes(rng, now, 30)]
    settings = ClusterSettings(4, 100, consolidate_after_s=60.0, move_cooldown_s=0.0)
    resolved = tuple(replace(n, runs=tuple(replace(r, expected_duration_s=5000.0) for r in n.runs)) for n in nodes)
    for target in (5, 15, 25):
        by_cluster = plan_cluster(ClusterSnapshot("c", settings, target, tuple(nodes), now - 1000, None,
                                                  (("e", 5000.0),)), now)
        by_run = plan_cluster(ClusterSnapshot("c", settings, target, resolved, now - 1000, None), now)
        assert by_cluster == by_run
        assert by_cluster.surplus


def test_placement_order_with_durations_known_is_longest_first_then_queue_order() -> None:
    ready = ReadyQueue()
    for gid, expected in (("a", None), ("b", 100.0), ("c", None), ("d", 900.0), ("e", 100.0)):
        ready.add(RunState(SimRun(gid, 50.0, expected_s=expected)))
    assert [r.gid for r in ready_head(ready, 10)] == ["d", "b", "e", "a", "c"]
    assert [r.gid for r in ready_head(ready, 2)] == ["d", "b"]
    plain = ReadyQueue()
    for gid in "xyz":
        plain.add(RunState(SimRun(gid, 50.0)))
    assert [r.gid for r in ready_head(plain, 2)] == ["x", "y"]
