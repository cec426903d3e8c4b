"""Which GPUs and CPUs each slot of a node gets (pure).

Slot i gets the i-th block of what the *job* was given: on a shared or partial node SLURM
hands the job e.g. CUDA_VISIBLE_DEVICES=3,5,6,7 and an affinity mask of some cores, and a
run must never touch a device or core that belongs to another job.

Without `cuda_devices_per_slot`, a run with `cuda: true` gets one device, slot i the i-th of
the job's own CUDA_VISIBLE_DEVICES, or, when the variable is unset, the i-th GPU that
`nvidia-smi -L` lists (as the original did).
"""

from __future__ import annotations


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
