"""Workers started by ``sweep --workers N`` on one machine."""

from __future__ import annotations

from harness.study.workers import thread_env


def test_workers_share_the_cores_unless_told_otherwise() -> None:
    assert thread_env({}, 2, 16)["OMP_NUM_THREADS"] == "8"
    assert thread_env({}, 4, 2)["OMP_NUM_THREADS"] == "1"
    assert thread_env({"OMP_NUM_THREADS": "3", "X": "y"}, 2, 16) == {"OMP_NUM_THREADS": "3", "X": "y"}
