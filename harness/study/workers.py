"""Several workers on this machine: child processes that each join the study, and a watcher."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Sequence


def run_workers(
    argv: Sequence[str], n: int, watch: Callable[[], None] | None = None, every_s: float = 2.0
) -> list[int]:
    """Start ``n`` copies of ``argv`` and wait for all; their exit codes, in start order.

    Ctrl-C reaches the children through the terminal's process group; SIGTERM is sent as well, so
    a parent stopped by ``kill`` still has every worker close its runs truthfully.
    """
    children = [subprocess.Popen(list(argv)) for _ in range(n)]
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
