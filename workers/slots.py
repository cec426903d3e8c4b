"""Which slots an attempt gets on this node and what they give it: CPUs, GPUs, the
environment (pure; what the job was given is read once by the runtime, `JobResources`).

Slot i gets the i-th block of what the *job* was given: on a shared or partial node SLURM
hands the job e.g. CUDA_VISIBLE_DEVICES=3,5,6,7 and an affinity mask of some cores, and a
run must never touch a device or core that belongs to another job.

Without `cuda_devices_per_slot`, a run with `cuda: true` gets one device, slot i the i-th of
the job's own CUDA_VISIBLE_DEVICES, or, when the variable is unset, the i-th GPU that
`nvidia-smi -L` lists (as the original did).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from juqueue.definitions.models import ClusterSpec
from juqueue.paths import split_global_id


def parse_cuda_visible_devices(value: str | None) -> list[str]:
    """"3,5, 6,7" -> ["3", "5", "6", "7"]; unset or empty -> []. Entries stay strings
    (they may be UUIDs such as GPU-8f3a... or MIG ids)."""
    if not value:
        return []
    return [item.strip() for item in value.split(",") if item.strip()]


def parse_nvidia_smi_list(text: str) -> list[str]:
    """GPU indices, in order, from `nvidia-smi -L` ("GPU 0: NVIDIA A100 (UUID: GPU-...)");
    MIG lines and anything else are skipped."""
    out = []
    for line in (text or "").splitlines():
        head, sep, _ = line.partition(":")
        parts = head.split()
        if sep and len(parts) == 2 and parts[0] == "GPU" and parts[1].isdigit():
            out.append(parts[1])
    return out


def _check(per_slot: int, slot: int) -> None:
    if per_slot < 1:
        raise ValueError(f"per_slot must be at least 1, got {per_slot}")
    if slot < 0:
        raise ValueError(f"slot must be at least 0, got {slot}")


def slot_cuda_devices(job_devices: list[str], per_slot: int, slot: int) -> list[str]:
    """The slot's block of the job's own devices; never shared, so too few is an error."""
    _check(per_slot, slot)
    start, end = slot * per_slot, (slot + 1) * per_slot
    if end > len(job_devices):
        raise ValueError(
            f"slot {slot} needs {per_slot} CUDA devices (positions {start}..{end - 1}) "
            f"but the job has only {len(job_devices)}: {','.join(job_devices) or 'none'}"
        )
    return list(job_devices[start:end])


def slot_cpus(allowed_cpus: list[int], per_slot: int, slot: int) -> list[int]:
    """The slot's block of the job's sorted allowed CPUs. With more slots than CPUs the
    blocks wrap around, so slots share CPUs (serve warns about that) rather than fail."""
    _check(per_slot, slot)
    cpus = sorted(set(allowed_cpus))
    if not cpus:
        raise ValueError(f"slot {slot} needs {per_slot} CPUs but the job has none allowed")
    n = len(cpus)
    if per_slot >= n:
        return cpus
    start = slot * per_slot
    return sorted({cpus[(start + i) % n] for i in range(per_slot)})


# ---- which slots ----------------------------------------------------------------------------
def choose_slots(requested: Sequence[int] | None, used: set[int], num_slots: int) -> tuple[tuple[int, ...], str | None]:
    """The slots an attempt takes here, and why it must be refused (None: it may run).

    `requested`: the indices the controller assigned; the attempt uses exactly those, and an
    index already in use here means a duplicate placement (refused, never run). None (an
    older controller's message): the first free slot."""
    refusal = None
    if requested is None:
        free = [i for i in range(num_slots) if i not in used]
        chosen = tuple(free[:1])
        if not chosen:
            refusal = "no free slot"
    else:
        chosen = tuple(int(i) for i in requested)
        busy = sorted(set(chosen) & used)
        outside = [i for i in chosen if not 0 <= i < num_slots]
        if busy:
            refusal = f"slots {','.join(map(str, busy))} already in use here (a duplicate placement)"
        elif outside or not chosen or len(set(chosen)) != len(chosen):
            refusal = f"slots {list(chosen)} are not distinct slots of this node (0..{num_slots - 1})"
    return chosen, refusal


# ---- what they give the run -----------------------------------------------------------------
@dataclass(frozen=True)
class JobResources:
    """What the job was given, read once when its worker starts, so slot blocks are computed
    from the job's own devices and cores, never the whole machine's."""

    allowed_cpus: list[int]  # the job's affinity mask, sorted
    cuda_env: str | None  # the job's CUDA_VISIBLE_DEVICES as it found it (None: unset)
    job_devices: list[str]  # parse_cuda_visible_devices(cuda_env)
    listed_devices: Callable[[], list[str]]  # the GPUs `nvidia-smi -L` lists; called only when needed


def slot_device(resources: JobResources, slot: int) -> str:
    """Without cuda_devices_per_slot: slot i gets the i-th of the job's own devices
    (CUDA_VISIBLE_DEVICES; when unset, what nvidia-smi lists). ValueError when there is none."""
    if resources.cuda_env is not None:
        devices, where = resources.job_devices, "CUDA_VISIBLE_DEVICES"
    else:
        devices, where = resources.listed_devices(), "CUDA_VISIBLE_DEVICES is unset; nvidia-smi -L"
    try:
        return slot_cuda_devices(devices, 1, slot)[0]
    except ValueError as exc:
        raise ValueError(f"{exc} ({where})") from None


def slot_env(spec: dict, slots: tuple[int, ...] | int, node: str, cluster: ClusterSpec,
             resources: JobResources) -> tuple[dict[str, str], list[int] | None]:
    """The run's environment for its slots and the CPUs it is pinned to (None: not pinned):
    the CPU and GPU blocks of every one of its slots. ValueError: the job lacks the devices."""
    if isinstance(slots, int):
        slots = (slots,)
    experiment, run_id = split_global_id(spec["global_id"])
    extra = {
        "RUN_ID": run_id,  # the original's names: the run's own id and its experiment
        "EXPERIMENT_ID": experiment,
        "JUQUEUE_RUN_ID": spec["global_id"],
        "JUQUEUE_ATTEMPT": str(spec["attempt"]),
        "JUQUEUE_RUN_DIR": spec["run_dir"],
        "JUQUEUE_SLOT": str(slots[0]),
        "JUQUEUE_SLOTS": ",".join(map(str, slots)),
        "JUQUEUE_NODE": node,
    }
    if spec.get("checkpoint_file"):  # (absent from an older controller's spec)
        extra["JUQUEUE_CHECKPOINT_FILE"] = spec["checkpoint_file"]
    cpus = None
    if cluster.cpus_per_slot:
        cpus = sorted({c for slot in slots for c in slot_cpus(resources.allowed_cpus, cluster.cpus_per_slot, slot)})
        extra["OMP_NUM_THREADS"] = str(cluster.cpus_per_slot * len(slots))
    if spec.get("cuda") and cluster.cuda_devices_per_slot:
        extra["CUDA_VISIBLE_DEVICES"] = ",".join(
            d for slot in slots for d in slot_cuda_devices(resources.job_devices, cluster.cuda_devices_per_slot, slot)
        )
    elif spec.get("cuda"):
        extra["CUDA_VISIBLE_DEVICES"] = ",".join(slot_device(resources, slot) for slot in slots)
    return extra, cpus
