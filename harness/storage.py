"""Optuna storages by URL, and the names of the user attrs the harness keeps on trials."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial

# Optuna user attrs on trials (MLflow tag names live in harness.tracking).
ATTR_RUN_ID = "mlflow_run_id"
ATTR_INTERRUPTED = "harness.interrupted"
ATTR_VS_BASELINE = "harness.vs_baseline"
ATTR_RETRY_OF = "harness.retry_of"
ATTR_WORKER = "harness.worker"


def make_storage(url: str, heartbeat: HeartbeatOptions | None = None) -> optuna.storages.BaseStorage:
    """The storage at ``url``; ``heartbeat`` (for workers that run trials) turns Optuna's on."""
    if url.endswith(".log") and "://" not in url:
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(url))
    kwargs: dict = {}
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # Several workers on one SQLite file wait for each other's writes instead of failing.
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    if heartbeat is not None:
        kwargs |= {
            "heartbeat_interval": heartbeat.interval_s,
            "grace_period": heartbeat.grace_s,
            "heartbeat_stale_trial_callback": heartbeat.on_stale,
        }
    return optuna.storages.RDBStorage(url, **kwargs)


@dataclass(frozen=True)
class HeartbeatOptions:
    interval_s: int
    grace_s: int
    on_stale: Callable[[optuna.Study, FrozenTrial], None] | None = None


def load_study(name: str, url: str) -> optuna.Study:
    """An existing study; KeyError when there is none of that name."""
    return optuna.load_study(study_name=name, storage=make_storage(url))
