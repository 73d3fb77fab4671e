"""What the machine offers: physical cores read from /proc/cpuinfo, threads set to them."""

from __future__ import annotations

import os

import pytest
import torch

from harness import device

# Two packages, two cores each, two hyperthreads per core: eight logical cpus, four cores.
CPUINFO = "\n\n".join(
    f"processor\t: {n}\nphysical id\t: {n // 4}\ncore id\t\t: {(n // 2) % 2}\nflags\t\t: fpu avx2" for n in range(8)
)


def test_physical_cores_count_distinct_cores_per_package() -> None:
    assert device.physical_cores(CPUINFO) == 4
    assert device.physical_cores("") == (os.cpu_count() or 1)  # nothing readable: the logical count


def test_threads_follow_physical_cores_unless_omp_says(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(device, "_cpuinfo", lambda: CPUINFO)
        monkeypatch.setattr(device.os, "sched_getaffinity", lambda pid: set(range(8)))
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        assert device.use_physical_cores() == 4
        monkeypatch.setattr(device.os, "sched_getaffinity", lambda pid: {0})  # a one-cpu cgroup
        assert device.use_physical_cores() == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        torch.set_num_threads(2)
        assert device.use_physical_cores() == 2  # left as the user's environment set it
    finally:
        torch.set_num_threads(before)


def test_visible_gpu_ids_follow_cuda_visible_devices_when_set() -> None:
    assert device.visible_ids({}, 2) == ["0", "1"]
    assert device.visible_ids({"CUDA_VISIBLE_DEVICES": "3, 5"}, 2) == ["3", "5"]
    assert device.visible_ids({"CUDA_VISIBLE_DEVICES": ""}, 0) == []
    assert device.visible_ids({}, 0) == []


def test_training_device_on_a_machine_without_gpus_names_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device, "_cpuinfo", lambda: "processor\t: 0\nmodel name\t: Example CPU 9000\n")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device.training_device() == device.TrainingDevice("cpu", "Example CPU 9000", torch.get_num_threads())
