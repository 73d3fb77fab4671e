"""Stores a worker on another machine could not reach are named, with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.launch.reachability import cluster_problems, is_loopback, storage_problem, tracking_problem
from tests.launch.clusters import cluster_config


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("sqlite:///mlruns/optuna.db", "a file on this machine"),
        ("study.log", "a file on this machine"),
        ("postgresql://postgres@127.0.0.1:5432/studies", "127.0.0.1, this machine's loopback"),
        ("postgresql+psycopg://u:secret@localhost/studies", "localhost, this machine's loopback"),
        ("mysql://u@[::1]:3306/studies", "this machine's loopback"),
        ("postgresql:///studies", "names no host"),
        ("postgresql://postgres@/studies?host=/var/run/postgresql", "names no host"),
    ],
)
def test_storage_a_cluster_worker_cannot_reach_is_named_with_the_reason(url: str, why: str) -> None:
    problem = storage_problem(url)
    assert problem is not None and why in problem
    assert "secret" not in problem  # a password never reaches a message


def test_a_database_on_another_host_is_reachable() -> None:
    assert storage_problem("postgresql://postgres@10.0.0.5:5432/studies") is None
    assert storage_problem("postgresql://postgres@db.example:5432/studies") is None  # resolves on the cluster


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("sqlite:///mlruns/mlflow.db", "on this machine's disk"),
        ("mlruns", "on this machine's disk"),
        ("file:///srv/mlruns", "on this machine's disk"),
        ("http://127.0.0.1:5000", "loopback"),
        ("http://localhost:5000", "loopback"),
    ],
)
def test_a_tracking_store_on_this_machine_is_named(uri: str, why: str) -> None:
    problem = tracking_problem(uri)
    assert problem is not None and why in problem


def test_a_tracking_server_elsewhere_is_reachable() -> None:
    assert tracking_problem("http://10.0.0.6:5000") is None
    assert tracking_problem("https://tracker.example") is None
    assert tracking_problem("databricks") is None


def test_loopback_names_and_addresses() -> None:
    assert is_loopback("localhost") and is_loopback("127.0.0.2") and is_loopback("::1")
    assert not is_loopback("10.0.0.5") and not is_loopback("no-such-host.example")


def test_the_config_reports_every_store_out_of_reach(tmp_path: Path) -> None:
    assert cluster_problems(cluster_config(tmp_path)) == []
    local = cluster_config(
        tmp_path,
        storage="sqlite:///optuna.db",
        mlflow={"tracking_uri": "http://10.0.0.6:5000", "artifact_location": str(tmp_path / "artifacts")},
    )
    problems = cluster_problems(local)
    assert [p.split(" ", 1)[0] for p in problems] == ["storage", "mlflow.artifact_location"]
