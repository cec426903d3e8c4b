"""Slot i gets the i-th block of the job's own GPUs and CPUs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from juqueue.workers.slots import parse_cuda_visible_devices, slot_cpus, slot_cuda_devices


def test_issue_example_devices_3567_two_per_slot() -> None:
    devices = parse_cuda_visible_devices("3,5,6,7")
    assert slot_cuda_devices(devices, 2, 0) == ["3", "5"]
    assert slot_cuda_devices(devices, 2, 1) == ["6", "7"]


def test_one_device_per_slot_uses_job_positions_not_absolute_indices() -> None:
    devices = ["3", "5", "6", "7"]
    assert [slot_cuda_devices(devices, 1, i) for i in range(4)] == [["3"], ["5"], ["6"], ["7"]]


def test_not_enough_devices_names_the_numbers() -> None:
    with pytest.raises(ValueError, match=r"slot 2 needs 2 CUDA devices.*only 4: 3,5,6,7"):
        slot_cuda_devices(["3", "5", "6", "7"], 2, 2)
    with pytest.raises(ValueError, match="only 0: none"):
        slot_cuda_devices([], 1, 0)


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, []),
        ("", []),
        ("0", ["0"]),
        ("3,5,6,7", ["3", "5", "6", "7"]),
        (" 3, 5 ,", ["3", "5"]),
        ("GPU-8f3a2b1c,MIG-GPU-1/2/0", ["GPU-8f3a2b1c", "MIG-GPU-1/2/0"]),
    ],
)
def test_parse_cuda_visible_devices(value: str | None, expected: list[str]) -> None:
    assert parse_cuda_visible_devices(value) == expected


def test_cpu_blocks_of_the_sorted_allowed_list() -> None:
    allowed = [17, 16, 3, 2, 9, 8]  # affinity mask of a partial node, unsorted
    assert slot_cpus(allowed, 2, 0) == [2, 3]
    assert slot_cpus(allowed, 2, 1) == [8, 9]
    assert slot_cpus(allowed, 2, 2) == [16, 17]


def test_more_slots_than_cpus_wrap_around_and_share() -> None:
    allowed = [0, 1, 2]
    assert slot_cpus(allowed, 2, 0) == [0, 1]
    assert slot_cpus(allowed, 2, 1) == [0, 2]
    assert slot_cpus(allowed, 2, 2) == [1, 2]
    assert slot_cpus(allowed, 1, 5) == [2]
    assert slot_cpus(allowed, 4, 0) == [0, 1, 2]  # a slot never gets a CPU twice


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="per_slot"):
        slot_cpus([0, 1], 0, 0)
    with pytest.raises(ValueError, match="slot"):
        slot_cuda_devices(["0"], 1, -1)
    with pytest.raises(ValueError, match="none allowed"):
        slot_cpus([], 1, 0)


@st.composite
def devices_and_layout(draw: st.DrawFn) -> tuple[list[str], int, int]:
    per_slot = draw(st.integers(1, 4))
    slots = draw(st.integers(1, 8))
    extra = draw(st.integers(0, 3))
    ids = draw(
        st.lists(st.integers(0, 63), min_size=per_slot * slots + extra, max_size=per_slot * slots + extra, unique=True)
    )
    return [str(i) for i in ids], per_slot, slots


@given(devices_and_layout())
def test_device_blocks_of_distinct_slots_never_overlap(layout: tuple[list[str], int, int]) -> None:
    devices, per_slot, slots = layout
    blocks = [slot_cuda_devices(devices, per_slot, i) for i in range(slots)]
    assert all(len(b) == per_slot for b in blocks)
    seen = [d for b in blocks for d in b]
    assert len(seen) == len(set(seen))
    assert set(seen) <= set(devices)


@given(
    st.lists(st.integers(0, 255), min_size=1, max_size=64, unique=True),
    st.integers(1, 8),
)
def test_cpu_blocks_never_overlap_when_enough_cpus(allowed: list[int], per_slot: int) -> None:
    slots = len(allowed) // per_slot
    blocks = [slot_cpus(allowed, per_slot, i) for i in range(slots)]
    seen = [c for b in blocks for c in b]
    assert len(seen) == len(set(seen)) == slots * per_slot
    assert set(seen) <= set(allowed)
