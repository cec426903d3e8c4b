"""What 1,000 nodes and 100,000 runs need of the controller: heartbeats reach the store once per
tick (memory has them at once), backends of other types can be registered, and a placed run's
spec is read from the store (memory keeps only what decisions read)."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller_fakes import Harness, run_specs
from juqueue.backends import registry
from juqueue.controller.records import RunTraits, traits_of
from juqueue.definitions.clusters import load_clusters
from juqueue.definitions.models import ClusterSpec
from juqueue.errors import ConfigError
from juqueue.status import NodeState


def test_heartbeats_reach_the_store_once_per_tick_and_memory_at_once(make) -> None:
    h: Harness = make([ClusterSpec(name="c", type="local", num_slots=1)], run_specs(1, "c"))
    h.step()
    (node,) = h.nodes_of("c")
    h.heartbeat(node)
    h.step()
    assert h.node(node).state == NodeState.UP.value  # the node came up: its row was written whole
    written = h.node(node).last_heartbeat
    h.clock.advance(5)
    h.heartbeat(node)
    h.step()
    assert h.controller.s.nodes[node].last_heartbeat == h.clock.time()  # liveness reads memory
    assert h.node(node).last_heartbeat == written  # no node-row UPDATE for a heartbeat
    h.tick()
    assert h.node(node).last_heartbeat == h.controller.s.nodes[node].last_heartbeat  # the tick wrote it


def test_placement_publishes_the_spec_read_from_the_store(make) -> None:
    h: Harness = make([ClusterSpec(name="c", type="local", num_slots=2)], run_specs(2, "c", slots=1, duration=30))
    h.step()
    (node,) = h.nodes_of("c")
    h.heartbeat(node)
    h.step()
    sent = h.publisher.to_node(node)
    assert sorted(a.global_id for a in sent) == ["exp@r0", "exp@r1"]
    assert all('"cmd":["true"]' in a.spec_json.replace(" ", "") for a in sent)
    runs = [r for r in h.controller.s.runs.values()]
    assert runs and all(r.traits is runs[0].traits for r in runs)  # one shared RunTraits for the sweep
    assert runs[0].duration_s == 30.0 and not hasattr(runs[0], "__dict__")


def test_traits_are_what_decisions_read_and_are_interned() -> None:
    spec = '{"slots": 2, "executor": {"cuda": true}, "movable": false, "duration": 5, "checkpoint_interval": 60}'
    t = traits_of(spec)
    assert t == RunTraits(slots=2, needs_cuda=True, movable=False, duration_s=5.0, checkpoint_interval=60.0)
    assert traits_of(spec) is t and traits_of("{}") == RunTraits()


class _Nothing:
    def __init__(self, work: object) -> None:
        self.work = work


def test_a_registered_backend_type_is_a_cluster_type(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "clusters.yaml"
    path.write_text("sim:\n  type: simtest\n  num_slots: 4\n")
    with pytest.raises(ConfigError, match=r"unknown cluster type 'simtest' \(local or slurm\)"):
        load_clusters(path)
    monkeypatch.setattr(registry, "_factories", {})
    registry.register_backend("simtest", _Nothing)
    assert load_clusters(path)["sim"].type == "simtest"
    assert set(registry.registered_backends(tmp_path)) == {"simtest"}  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="built in"):
        registry.register_backend("slurm", _Nothing)


def test_a_backend_module_that_cannot_be_imported_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(registry.ENV_VAR, "no_such_backend_module_xyz")
    with pytest.raises(ConfigError, match="JUQUEUE_BACKENDS: backend module 'no_such_backend_module_xyz'"):
        registry.cluster_types()
