"""A study's workers as Ray tasks: Ray places them (CPUs, GPUs), restarts one whose process or
node dies, and streams their output; each task runs the worker loop of ``harness worker``.

A worker killed mid-trial is the case the study already handles (its trial goes stale, is failed
and runs again elsewhere): Ray starts the task again, and the new worker joins the same study.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.config import ConfigError, StudyConfig
from harness.launch.reachability import cluster_problems
from harness.launch.spec import LaunchError, Workers
from harness.redaction import mask_url

CONNECT_TIMEOUT_S = 10.0
CANCEL_WAIT_S = 180.0  # for cancelled workers to close their runs
RECANCEL_S = 20.0  # a cancelled worker still running this long after is interrupted again
LOCAL_OBJECT_STORE = 100 * 2**20  # the workers pass nothing through it: Ray's small minimum will do


@dataclass(frozen=True)
class RayCluster:
    workers: Workers
    address: str | None = None  # None: a Ray started in this process for this study, on this machine
    restarts: int = 3  # times Ray starts again a worker whose process or node died


@dataclass(frozen=True)
class WorkerEnd:
    """How one worker's task ended: its exit status and, when it failed, why."""

    index: int
    code: int
    reason: str = ""


def run_worker(config: StudyConfig, setup: Callable[[], None] | None = None) -> int:
    """The body of each Ray task: ``setup`` (what the command sets up in a process), then the
    worker loop as ``harness worker`` runs it; its exit status."""
    from harness.study.loop import run_sweep

    if setup is not None:
        setup()
    # Ray prefixes the line with the task's name: which worker runs where, and each restart of it.
    print(f"joins study {config.study_name} on {socket.gethostname()}, process {os.getpid()}", flush=True)
    return run_sweep(config).outcome.exit_code


def plan(config: StudyConfig, cluster: RayCluster) -> str:
    """What ``launch`` would submit, for --dry-run."""
    w = cluster.workers
    where = cluster.address or "a Ray started here (this machine only)"
    return "\n".join(
        [
            f"Ray at {where}: {w.count} tasks harness-worker-0..{w.count - 1} running `harness worker`",
            f"  each: num_cpus={w.cpus:g} num_gpus={w.gpus} max_retries={cluster.restarts} (process or node lost)",
            f"  study {config.study_name}: n_trials={config.n_trials}, storage {mask_url(config.storage)}",
            f"  tracking {mask_url(config.mlflow.tracking_uri)}",
        ]
    )


def check_address(address: str | None, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """LaunchError, within ``timeout_s``, when a ``host:port`` Ray address does not answer."""
    if address is None or address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise LaunchError(f"--address {address}: expected HOST:PORT (or ray://HOST:PORT, or auto)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as error:
        raise LaunchError(f"Ray at {address} does not answer: {error.strerror or error}") from None


def placeable(nodes: Sequence[Mapping[str, float]], workers: Workers) -> int:
    """Pure: how many of the workers the nodes (their total resources) can hold at once."""
    fits = 0
    for node in nodes:
        by_cpu = int(node.get("CPU", 0) // workers.cpus) if workers.cpus else workers.count
        by_gpu = int(node.get("GPU", 0) // workers.gpus) if workers.gpus else workers.count
        fits += min(by_cpu, by_gpu)
    return fits


def launch(
    config: StudyConfig,
    cluster: RayCluster,
    echo: Callable[[str], None],
    setup: Callable[[], None] | None = None,
) -> list[WorkerEnd]:
    """Start the workers (each calls ``setup``, a picklable callable, before its loop) and wait for
    all; how each ended. Ctrl-C cancels them (trials closed KILLED, queued again) and is raised
    again once they have stopped."""
    try:
        import ray
    except ImportError:
        raise LaunchError("harness launch ray needs Ray: pip install 'harness[ray]'") from None

    check_address(cluster.address)
    _connect(cluster)
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        if not _only_this_machine(nodes) and (problems := cluster_problems(config)):
            raise LaunchError("workers on other machines could not reach: " + "; ".join(problems))
        if (fits := placeable([n["Resources"] for n in nodes], cluster.workers)) < cluster.workers.count:
            raise LaunchError(_placement_message(cluster.workers, fits, nodes))
        task = ray.remote(run_worker)
        refs = [
            task.options(
                name=f"harness-worker-{i}",
                num_cpus=cluster.workers.cpus,
                num_gpus=cluster.workers.gpus,
                max_retries=cluster.restarts,
                retry_exceptions=False,  # a worker's own error (bad input) is not Ray's to retry
            ).remote(config, setup)
            for i in range(cluster.workers.count)
        ]
        echo(f"{len(refs)} workers submitted to Ray; their output follows, each line prefixed by its task")
        return _wait(refs)
    finally:
        ray.shutdown()


def _connect(cluster: RayCluster) -> None:
    import ray

    try:
        if cluster.address is None:
            w = cluster.workers
            ray.init(
                address="local",  # a new Ray of this study's own, even where another one runs (or ran)
                num_cpus=max(1, math.ceil(w.count * w.cpus)),
                object_store_memory=LOCAL_OBJECT_STORE,
                include_dashboard=False,
            )
        else:
            ray.init(address=cluster.address)  # the cluster's own settings: resources, dashboard
    except (ConnectionError, RuntimeError, ValueError) as error:
        hint = ""
        if cluster.address is not None and "RAY_AUTH_MODE" not in os.environ:
            # Ray 2.60's `ray start` turns token authentication on; a driver sends the token only when told.
            hint = " (a cluster `ray start` began asks for its token: set RAY_AUTH_MODE=token, and the token)"
        raise LaunchError(f"Ray at {cluster.address or 'this machine'} could not be joined: {error}{hint}") from None


def _only_this_machine(nodes: Sequence[Mapping[str, Any]]) -> bool:
    from ray.util import get_node_ip_address

    here = get_node_ip_address()
    return all(n.get("NodeManagerAddress") == here for n in nodes)


def _placement_message(workers: Workers, fits: int, nodes: Sequence[Mapping[str, Any]]) -> str:
    each = f"{workers.cpus:g} CPU" + (f" + {workers.gpus} GPU" if workers.gpus else "")
    offered = ", ".join(
        f"{n.get('NodeManagerAddress')}: {n['Resources'].get('CPU', 0):g} CPU {n['Resources'].get('GPU', 0):g} GPU"
        for n in nodes
    )
    return (
        f"{workers.count} workers of {each} each: the cluster can place {fits} at once ({offered}); "
        "ask for fewer workers or smaller ones"
    )


def _wait(refs: list[Any]) -> list[WorkerEnd]:
    import ray

    try:
        pending = list(refs)
        while pending:
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=1.0)
    except KeyboardInterrupt:
        _cancel(refs)
        raise
    return [_end(i, ref) for i, ref in enumerate(refs)]


def _cancel(refs: list[Any]) -> None:
    """Cancel the tasks: each gets a KeyboardInterrupt, its trial closes KILLED (queued again on the
    next start). An interrupt can land where Python drops it (a garbage-collection callback prints
    "Exception ignored"): a task still running after RECANCEL_S is sent another, up to CANCEL_WAIT_S."""
    import ray

    deadline, pending = time.monotonic() + CANCEL_WAIT_S, list(refs)
    while pending and time.monotonic() < deadline:
        for ref in pending:
            ray.cancel(ref)
        _, pending = ray.wait(pending, num_returns=len(pending), timeout=RECANCEL_S)


def _end(index: int, ref: Any) -> WorkerEnd:
    import ray
    from ray.exceptions import RayError, RayTaskError

    try:
        return WorkerEnd(index, ray.get(ref))
    except RayTaskError as error:
        cause = error.cause if isinstance(error.cause, BaseException) else error
        return WorkerEnd(index, 2 if isinstance(cause, ConfigError) else 1, str(cause).strip().splitlines()[-1])
    except RayError as error:  # lost more often than max_retries allows, or cancelled
        return WorkerEnd(index, 1, f"{type(error).__name__}: {str(error).strip().splitlines()[0]}")
