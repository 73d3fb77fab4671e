"""Ray launches without a cluster: what fits where, an address that does not answer, the dry run."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import pytest

from harness.launch.ray import RayCluster, check_address, launch, placeable, plan
from harness.launch.spec import LaunchError, Workers
from tests.launch.clusters import cluster_config


def test_workers_fit_where_each_node_has_their_cpus_and_gpus() -> None:
    nodes = [{"CPU": 8.0, "GPU": 2.0}, {"CPU": 4.0}, {"CPU": 16.0, "GPU": 4.0}]
    assert placeable(nodes, Workers(10, 2, 0)) == 4 + 2 + 8
    assert placeable(nodes, Workers(10, 2, 1)) == 2 + 0 + 4
    assert placeable(nodes, Workers(10, 4, 2)) == 1 + 0 + 2
    assert placeable([{"CPU": 2.0}], Workers(3, 1, 1)) == 0  # GPUs asked for, none there


def test_an_address_nothing_answers_at_is_refused_quickly() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(LaunchError, match=rf"Ray at 127.0.0.1:{port} does not answer"):
        check_address(f"127.0.0.1:{port}", timeout_s=5)
    assert time.monotonic() - started < 30  # a refusal, not a hang
    with pytest.raises(LaunchError, match="expected HOST:PORT"):
        check_address("no-port-here")
    check_address(None)  # a Ray started here: nothing to reach


def test_the_dry_run_names_the_tasks_and_what_each_gets(tmp_path: Path) -> None:
    text = plan(cluster_config(tmp_path), RayCluster(Workers(3, 2, 1), "10.0.0.7:6379"))
    assert "Ray at 10.0.0.7:6379: 3 tasks harness-worker-0..2" in text
    assert "num_cpus=2 num_gpus=1 max_retries=3" in text


def test_without_ray_installed_the_launch_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` finds in a base install
    with pytest.raises(LaunchError, match=r"pip install 'harness\[ray\]'"):
        launch(cluster_config(tmp_path), RayCluster(Workers(1)), print)
