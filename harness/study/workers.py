"""Several workers on this machine: child processes that each join the study, and a watcher."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence

from harness.device import physical_cores


def run_workers(
    argv: Sequence[str], n: int, watch: Callable[[], None] | None = None, every_s: float = 2.0
) -> list[int]:
    """Start ``n`` copies of ``argv`` and wait for all; their exit codes, in start order.

    Ctrl-C reaches the children through the terminal's process group; SIGTERM is sent as well, so
    a parent stopped by ``kill`` still has every worker close its runs truthfully.
    """
    env = thread_env(os.environ, n, physical_cores())  # hyperthreads share a core's vector units
    children = [subprocess.Popen(list(argv), env=env) for _ in range(n)]
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


def thread_env(environ: Mapping[str, str], n: int, cpus: int) -> dict[str, str]:
    """Pure: the children's environment, with the cores shared out between them.

    Each PyTorch process would otherwise start a thread per core, and N workers on one machine
    would fight over the same cores. A thread count the user set is kept.
    """
    env = dict(environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, cpus // n)))
    return env
