"""What the machine offers training: bf16 on CUDA or on CPUs with AVX512-bf16 or AMX, and cores."""

from __future__ import annotations

import functools
import os
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
