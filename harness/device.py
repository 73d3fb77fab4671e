"""What the machine offers training: bf16 on CUDA or on CPUs with AVX512-bf16 or AMX, cores and GPUs."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def _cpu_flags() -> set[str]:
    for line in _cpuinfo().splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


@functools.cache
def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags, read once: they decide precision rules that must not change mid-study."""
    return frozenset(_cpu_flags())


def physical_cores(cpuinfo: str | None = None) -> int:
    """Distinct (package, core) pairs in /proc/cpuinfo; the logical count where it names none."""
    cores: set[tuple[str, str]] = set()
    package = ""
    for line in (_cpuinfo() if cpuinfo is None else cpuinfo).splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "physical id":
            package = value
        elif key == "core id":
            cores.add((package, value))
    return len(cores) or os.cpu_count() or 1


def use_physical_cores() -> int:
    """Intra-op threads = the physical cores this process may run on: hyperthreads share a core's
    vector units, so more threads only contend. OMP_NUM_THREADS, when set, wins."""
    import torch

    if "OMP_NUM_THREADS" not in os.environ:
        allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        torch.set_num_threads(max(1, min(physical_cores(), allowed)))
    return torch.get_num_threads()


def cpu_has_bf16() -> bool:
    flags = _cpu_flags()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_features() -> str:
    """The CPU's vector features that decide precision and kernels, read at run time (logged per study)."""
    import torch

    flags = _cpu_flags()
    found = [name for name in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if name in flags]
    capability = torch.backends.cpu.get_cpu_capability()
    return (
        f"{capability} ({' '.join(found) or 'no vector flags read'}), {physical_cores()} cores, "
        f"{os.cpu_count()} logical cpus, {torch.get_num_threads()} threads"
    )


def use_bf16(precision: str) -> bool:
    if precision != "auto":
        return precision == "bf16"
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return cpu_has_bf16()


@dataclass(frozen=True)
class TrainingDevice:
    """What a trial trains on: ``cuda`` GPUs (``count`` visible to it) or the ``cpu`` (``count`` threads)."""

    kind: str
    name: str
    count: int


def training_device() -> TrainingDevice:
    """The device this process trains on, as a trial's run records it."""
    import torch

    if torch.cuda.is_available():
        return TrainingDevice("cuda", torch.cuda.get_device_name(0), torch.cuda.device_count())
    names = [line.partition(":")[2].strip() for line in _cpuinfo().splitlines() if line.startswith("model name")]
    return TrainingDevice("cpu", names[0] if names else "unknown cpu", torch.get_num_threads())


def gpu_ids(environ: Mapping[str, str] | None = None) -> list[str]:
    """The GPUs this process may hand out, as CUDA_VISIBLE_DEVICES names them (its own setting kept)."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return visible_ids(os.environ if environ is None else environ, count)


def visible_ids(environ: Mapping[str, str], count: int) -> list[str]:
    """Pure: the ids of ``count`` visible GPUs: CUDA_VISIBLE_DEVICES's entries when set, else 0..count-1."""
    if "CUDA_VISIBLE_DEVICES" not in environ:
        return [str(i) for i in range(count)]
    return [part.strip() for part in environ["CUDA_VISIBLE_DEVICES"].split(",") if part.strip()][:count]
