"""Optuna storages by URL, and the names of the user attrs the harness keeps on trials."""

from __future__ import annotations

from pathlib import Path

import optuna

# Optuna user attrs on trials (MLflow tag names live in harness.tracking).
ATTR_RUN_ID = "mlflow_run_id"
ATTR_HOST = "harness.host"
ATTR_PID = "harness.pid"
ATTR_INTERRUPTED = "harness.interrupted"
ATTR_VS_BASELINE = "harness.vs_baseline"
ATTR_RETRY_OF = "harness.retry_of"


def make_storage(url: str) -> optuna.storages.BaseStorage:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.RDBStorage(url)
    if url.startswith(("postgresql", "mysql")):
        # Many workers on many machines: heartbeats let a dead worker's trial be failed and retried.
        return optuna.storages.RDBStorage(
            url,
            heartbeat_interval=60,
            grace_period=180,
            failed_trial_callback=optuna.storages.RetryFailedTrialCallback(max_retry=1),
        )
    if url.endswith(".log"):
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(url))
    return optuna.storages.RDBStorage(url)


def load_study(name: str, url: str) -> optuna.Study:
    """An existing study; KeyError when there is none of that name."""
    return optuna.load_study(study_name=name, storage=make_storage(url))
