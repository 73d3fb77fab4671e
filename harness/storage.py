"""Optuna storages by URL, and the names of the user attrs the harness keeps on trials."""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import optuna
from optuna.storages import BaseStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import FrozenTrial

from harness.retry import retrying

log = logging.getLogger(__name__)
T = TypeVar("T")

# Optuna user attrs on trials (MLflow tag names live in harness.tracking).
ATTR_RUN_ID = "mlflow_run_id"
ATTR_INTERRUPTED = "harness.interrupted"
ATTR_VS_BASELINE = "harness.vs_baseline"
ATTR_RETRY_OF = "harness.retry_of"
ATTR_WORKER = "harness.worker"


def make_storage(
    url: str, heartbeat: HeartbeatOptions | None = None, reconnect_s: float = 600.0
) -> optuna.storages.BaseStorage:
    """The storage at ``url``; ``heartbeat`` (for workers that run trials) turns Optuna's on.

    A database storage waits up to ``reconnect_s`` for a database that went away (a restart,
    a failover, a network cut) instead of failing the trial or the worker (ReconnectingStorage).
    """
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
    # A database restart leaves dead connections in the pool: check each one out with a ping.
    kwargs.setdefault("engine_kwargs", {})["pool_pre_ping"] = True
    storage = wait_for_database(lambda: optuna.storages.RDBStorage(url, **kwargs), reconnect_s)
    return ReconnectingStorage(storage, reconnect_s)


@dataclass(frozen=True)
class HeartbeatOptions:
    interval_s: int
    grace_s: int
    on_stale: Callable[[optuna.Study, FrozenTrial], None] | None = None


def load_study(name: str, url: str) -> optuna.Study:
    """An existing study; KeyError when there is none of that name."""
    return optuna.load_study(study_name=name, storage=make_storage(url))


def lost_connection(error: BaseException) -> bool:
    """Whether ``error`` says the database could not be reached (so the call may be retried).

    Optuna turns every SQLAlchemy error inside a session into StorageInternalError, keeping the
    original as its cause; data errors (integrity, bad values) are not retried.
    """
    import sqlalchemy.exc

    cause = error.__cause__ if isinstance(error, optuna.exceptions.StorageInternalError) else error
    return isinstance(cause, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError) or (
        isinstance(cause, sqlalchemy.exc.DBAPIError) and cause.connection_invalidated
    )


def wait_for_database(call: Callable[[], T], patience_s: float = 600.0) -> T:
    """``call()``, made again while the database cannot be reached, for up to ``patience_s``."""

    def noted(error: BaseException) -> bool:
        if lost_connection(error):
            log.warning("study database unreachable, retrying: %s", str(error).splitlines()[0][:200])
            return True
        return False

    return retrying(noted, deadline_s=patience_s, initial_wait_s=0.5, backoff_cap_s=10.0)(call)


class ReconnectingStorage(BaseStorage, BaseHeartbeat):
    """An RDBStorage whose calls wait for the database to come back, up to ``patience_s``.

    Every storage method, the heartbeat's included, goes to the wrapped storage; a call that failed
    because the connection was lost is made again. Optuna's own storages give up at once, so a
    database restart would fail the running trials, kill their heartbeat threads and end workers.
    A write whose commit reached the database just before the connection died is made twice; the
    storage's writes are idempotent except creating a trial, whose stray copy stays WAITING/RUNNING
    without a heartbeat and is failed as stale.
    """

    def __init__(self, inner: optuna.storages.RDBStorage, patience_s: float) -> None:
        self.inner = inner
        self.patience_s = patience_s

    def __getstate__(self) -> dict[str, Any]:
        return {"inner": self.inner, "patience_s": self.patience_s}


def _delegate(name: str) -> Callable[..., Any]:
    def call(self: ReconnectingStorage, *args: Any, **kwargs: Any) -> Any:
        return wait_for_database(lambda: getattr(self.inner, name)(*args, **kwargs), self.patience_s)

    call.__name__ = name
    return call


_METHODS = {n for base in (BaseStorage, BaseHeartbeat) for n in vars(base) if callable(vars(base)[n])}
for _name in sorted(n for n in _METHODS if not n.startswith("__")):
    setattr(ReconnectingStorage, _name, _delegate(_name))
abc.update_abstractmethods(ReconnectingStorage)
