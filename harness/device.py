"""What the machine offers training: bf16 on CUDA or on CPUs with AVX512-bf16 or AMX, and cores."""

from __future__ import annotations

import os
from pathlib import Path


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def cpu_has_bf16() -> bool:
    flags = _cpu_flags()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_features() -> str:
    """The CPU's vector features that decide precision and kernels, read at run time (logged per study)."""
    import torch

    flags = _cpu_flags()
    found = [name for name in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if name in flags]
    capability = torch.backends.cpu.get_cpu_capability()
    return f"{capability} ({' '.join(found) or 'no vector flags read'}), {os.cpu_count()} logical cpus"


def use_bf16(precision: str) -> bool:
    if precision != "auto":
        return precision == "bf16"
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return cpu_has_bf16()
