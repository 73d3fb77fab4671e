"""Several workers on this machine: child processes that each join the study, and a watcher."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence

from harness.device import physical_cores


class PlacementError(ValueError):
    """The workers asked for cannot each have the accelerators asked for."""


def run_workers(
    argv: Sequence[str],
    envs: Sequence[Mapping[str, str]],
    watch: Callable[[], None] | None = None,
    every_s: float = 2.0,
) -> list[int]:
    """Start one copy of ``argv`` per environment in ``envs`` and wait for all; their exit codes.

    Ctrl-C reaches the children through the terminal's process group; SIGTERM is sent as well, so
    a parent stopped by ``kill`` still has every worker close its runs truthfully.
    """
    children = [subprocess.Popen(list(argv), env=dict(env)) for env in envs]
    try:
        while any(child.poll() is None for child in children):
            if watch is not None:
                watch()
            time.sleep(every_s)
    except BaseException:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            child.wait()
        raise
    if watch is not None:
        watch()
    return [child.returncode for child in children]


def worker_envs(n: int, gpus: Sequence[str], gpus_per_worker: int | None = None) -> list[dict[str, str]]:
    """The environments of ``n`` workers on this machine (see :func:`placed_envs`)."""
    return placed_envs(os.environ, n, physical_cores(), gpus, gpus_per_worker)  # hyperthreads share a core


def placed_envs(
    environ: Mapping[str, str], n: int, cpus: int, gpus: Sequence[str], gpus_per_worker: int | None
) -> list[dict[str, str]]:
    """Pure: each worker's environment: its share of the cores and, where there are GPUs, its own.

    Worker i sees only GPUs ``gpus[i*G:(i+1)*G]`` (``CUDA_VISIBLE_DEVICES``), G = ``gpus_per_worker``
    (1 when there are GPUs and it is not given; 0 trains on the CPU). PlacementError when the GPUs
    asked for are not there.
    """
    per = gpus_per_worker if gpus_per_worker is not None else (1 if gpus else 0)
    if per > 0 and n * per > len(gpus):
        where = f"{len(gpus)} visible ({','.join(gpus)})" if gpus else "none visible"
        raise PlacementError(f"--workers {n} x --gpus-per-worker {per} = {n * per} GPUs; this machine has {where}")
    base = thread_env(environ, n, cpus)
    if per == 0:  # on the CPU, also where GPUs are (--gpus-per-worker 0)
        return [{**base, "CUDA_VISIBLE_DEVICES": ""} if gpus else dict(base) for _ in range(n)]
    return [{**base, "CUDA_VISIBLE_DEVICES": ",".join(gpus[i * per : (i + 1) * per])} for i in range(n)]


def thread_env(environ: Mapping[str, str], n: int, cpus: int) -> dict[str, str]:
    """Pure: the children's environment, with the cores shared out between them.

    Each PyTorch process would otherwise start a thread per core, and N workers on one machine
    would fight over the same cores. A thread count the user set is kept.
    """
    env = dict(environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, cpus // n)))
    return env
