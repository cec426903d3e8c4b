"""The worker's slot choice and each slot's environment, without I/O: what the job was given
(`JobResources`) is built here by hand, and `nvidia-smi -L` is a function the test counts."""

from __future__ import annotations

import pytest

from juqueue.definitions.models import ClusterSpec
from juqueue.workers.slots import JobResources, choose_slots, parse_cuda_visible_devices, slot_device, slot_env


def resources(cuda_env: str | None = None, cpus: list[int] | None = None, listed: list[str] | None = None,
              calls: list[int] | None = None) -> JobResources:
    def listed_devices() -> list[str]:
        if calls is not None:
            calls.append(1)
        return list(listed or [])

    return JobResources(allowed_cpus=sorted(cpus or []), cuda_env=cuda_env,
                        job_devices=parse_cuda_visible_devices(cuda_env), listed_devices=listed_devices)


def cluster(**kw) -> ClusterSpec:
    return ClusterSpec(name="c", type="local", num_slots=4, **kw)


SPEC = {"global_id": "sweep@lr0.1", "attempt": 3, "run_dir": "/w/sweep/lr0.1"}


# ---- choose_slots ------------------------------------------------------------------------------
def test_assigned_slots_are_taken_exactly():
    assert choose_slots([2, 3], used={0}, num_slots=4) == ((2, 3), None)
    assert choose_slots(["1"], used=set(), num_slots=4) == ((1,), None)  # JSON may carry strings


def test_a_slot_in_use_is_a_duplicate_placement():
    chosen, refusal = choose_slots([1, 2], used={2, 3}, num_slots=4)
    assert chosen == (1, 2)
    assert refusal == "slots 2 already in use here (a duplicate placement)"


@pytest.mark.parametrize("requested", [[4], [-1], [], [1, 1]])
def test_slots_outside_the_node_or_repeated_are_refused(requested):
    _chosen, refusal = choose_slots(requested, used=set(), num_slots=4)
    assert refusal is not None and "are not distinct slots of this node (0..3)" in refusal


def test_without_assigned_slots_the_first_free_one():
    assert choose_slots(None, used={0, 2}, num_slots=4) == ((1,), None)
    assert choose_slots(None, used={0, 1, 2, 3}, num_slots=4) == ((), "no free slot")


def test_busy_wins_over_outside_in_the_reason():
    _chosen, refusal = choose_slots([3, 9], used={3}, num_slots=4)
    assert refusal is not None and "already in use" in refusal


# ---- slot_env ----------------------------------------------------------------------------------
def test_the_runs_names_and_slots():
    extra, cpus = slot_env(SPEC, (2, 3), "n7", cluster(), resources())
    assert extra == {
        "RUN_ID": "lr0.1", "EXPERIMENT_ID": "sweep", "JUQUEUE_RUN_ID": "sweep@lr0.1", "JUQUEUE_ATTEMPT": "3",
        "JUQUEUE_RUN_DIR": "/w/sweep/lr0.1", "JUQUEUE_SLOT": "2", "JUQUEUE_SLOTS": "2,3", "JUQUEUE_NODE": "n7",
    }
    assert cpus is None  # no cpus_per_slot: not pinned
    assert slot_env(SPEC, 1, "n7", cluster(), resources())[0]["JUQUEUE_SLOTS"] == "1"  # an int is one slot


def test_cpu_blocks_of_every_slot_and_their_threads():
    extra, cpus = slot_env(SPEC, (1, 2), "n", cluster(cpus_per_slot=2), resources(cpus=[8, 9, 10, 11, 12, 13, 14, 15]))
    assert cpus == [10, 11, 12, 13]
    assert extra["OMP_NUM_THREADS"] == "4"


def test_cuda_per_slot_takes_blocks_of_the_jobs_devices():
    res = resources(cuda_env="3,5,6,7")
    extra, _ = slot_env({**SPEC, "cuda": True}, (1,), "n", cluster(cuda_devices_per_slot=2), res)
    assert extra["CUDA_VISIBLE_DEVICES"] == "6,7"
    with pytest.raises(ValueError, match="slot 2 needs 2 CUDA devices"):
        slot_env({**SPEC, "cuda": True}, (2,), "n", cluster(cuda_devices_per_slot=2), res)


def test_no_cuda_leaves_the_variable_alone_and_asks_nobody():
    calls: list[int] = []
    extra, _ = slot_env(SPEC, (0,), "n", cluster(), resources(calls=calls))
    assert "CUDA_VISIBLE_DEVICES" not in extra and calls == []


def test_one_device_per_slot_from_the_jobs_variable_without_listing():
    calls: list[int] = []
    res = resources(cuda_env="4,7", listed=["0", "1", "2"], calls=calls)
    assert slot_env({**SPEC, "cuda": True}, (0, 1), "n", cluster(), res)[0]["CUDA_VISIBLE_DEVICES"] == "4,7"
    with pytest.raises(ValueError, match=r"only 2: 4,7 \(CUDA_VISIBLE_DEVICES\)"):
        slot_device(res, 2)
    assert calls == []  # the variable is set: nvidia-smi is not asked


def test_an_empty_variable_means_no_devices():
    with pytest.raises(ValueError, match="only 0: none"):
        slot_device(resources(cuda_env="", listed=["0"]), 0)


def test_unset_variable_takes_the_listed_gpus():
    calls: list[int] = []
    res = resources(cuda_env=None, listed=["0", "1"], calls=calls)
    assert [slot_device(res, i) for i in (0, 1)] == ["0", "1"]
    with pytest.raises(ValueError, match="CUDA_VISIBLE_DEVICES is unset; nvidia-smi -L"):
        slot_device(res, 2)
    assert len(calls) == 3  # caching the listing is the runtime's (it asks nvidia-smi once)
