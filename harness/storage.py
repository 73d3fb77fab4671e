"""Optuna storages by URL, and the names of the user attrs the harness keeps on trials.

A database that never answered this process is a configuration error (StorageError: wrong
database, user, password, host or port), found within seconds; one that answered before and went
away (a restart, a failover, a network cut) is waited for, up to ``workers.reconnect_s``.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import optuna
from optuna.storages import BaseStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import FrozenTrial, TrialState

from harness.config import ConfigError
from harness.redaction import mask_url
from harness.retry import retrying

log = logging.getLogger(__name__)
T = TypeVar("T")

# The storage password, for a URL written without one (libpq's PGPASSWORD and ~/.pgpass work too).
PASSWORD_ENV = "HARNESS_STORAGE_PASSWORD"
CONNECT_TIMEOUT_S = 10  # per attempt: a host that drops packets fails in seconds, not minutes
RECONNECT_BACKOFF_CAP_S = 10.0  # the longest wait between two attempts to reach a database that went away
_ANSWERED: set[str] = set()  # storage URLs whose database answered in this process

# Optuna user attrs on trials (MLflow tag names live in harness.tracking).
ATTR_RUN_ID = "mlflow_run_id"
ATTR_INTERRUPTED = "harness.interrupted"
ATTR_VS_BASELINE = "harness.vs_baseline"
ATTR_RETRY_OF = "harness.retry_of"
ATTR_WORKER = "harness.worker"
# A trial queued from the config's ``enqueue`` list: its index there (harness.settings.enqueue).
ATTR_ENQUEUED = "harness.enqueued"
# A confirmation trial (harness.study.confirm): the search trial whose configuration it trains again,
# and which further seed k it trains with; its MLflow run carries both as tags of the same names.
ATTR_REPEAT_OF = "harness.repeat_of"
ATTR_REPEAT = "harness.repeat"
# On the study: which configurations were queued for confirmation, with how many seeds.
ATTR_CONFIRM = "harness.confirm"
# On the study: the confirmed configurations, as harness.lifecycle.confirmed computed them.
ATTR_CONFIRMED = "harness.confirmed"


def repeat_of(trial: FrozenTrial) -> int | None:
    """The number of the search trial whose configuration ``trial`` trains again with another
    seed; None for a trial of the search itself."""
    original = trial.user_attrs.get(ATTR_REPEAT_OF)
    return None if original is None else int(original)


class StorageError(ConfigError):
    """The storage URL cannot work: its database never answered (see make_storage)."""


def make_storage(
    url: str, heartbeat: HeartbeatOptions | None = None, reconnect_s: float = 600.0
) -> optuna.storages.BaseStorage:
    """The storage at ``url``; ``heartbeat`` (for workers that run trials) turns Optuna's on.

    StorageError when the database cannot be reached now and never was in this process. Once it
    answered, a database that goes away is waited for, up to ``reconnect_s`` per call, instead
    of failing the trial or the worker (ReconnectingStorage).
    """
    if is_journal(url):
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(url))
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
    # A database restart leaves dead connections in the pool: check each one out with a ping.
    kwargs: dict[str, Any] = {"engine_kwargs": {"pool_pre_ping": True, "connect_args": connect_args(url)}}
    settle_s = None
    if heartbeat is not None:
        kwargs |= {
            "heartbeat_interval": heartbeat.interval_s,
            "grace_period": heartbeat.grace_s,
            "heartbeat_stale_trial_callback": heartbeat.on_stale,
        }
        # After an outage every live worker writes a heartbeat within one retry wait and one interval.
        settle_s = heartbeat.grace_s + RECONNECT_BACKOFF_CAP_S
    storage = wait_for_database(lambda: optuna.storages.RDBStorage(url, **kwargs), reconnect_s, url=url)
    return ReconnectingStorage(storage, reconnect_s, settle_s, _claims_file(url))


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; None for any other storage or an in-memory one."""
    if not url.startswith("sqlite:///") or ":memory:" in url:
        return None
    return Path(url.removeprefix("sqlite:///")).expanduser().resolve()


def _claims_file(url: str) -> str | None:
    """A lock file beside a SQLite database, which every worker process on it shares."""
    path = sqlite_file(url)
    return None if path is None else str(path.parent / f".{path.name}.claims.lock")


def is_journal(url: str) -> bool:
    """Whether the storage URL names an Optuna journal file (a path ending in .log)."""
    return url.endswith(".log") and "://" not in url


def connect_args(url: str) -> dict[str, Any]:
    """The driver's arguments for ``url``: what the URL itself cannot say.

    Several workers on one SQLite file wait for each other's writes instead of failing. A server
    that does not answer an attempt within CONNECT_TIMEOUT_S fails it (libpq would wait minutes).
    A URL without a password takes HARNESS_STORAGE_PASSWORD's, which so stays out of every config,
    log and MLflow record.
    """
    import sqlalchemy.exc
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError) as error:
        raise StorageError(
            f"storage: {mask_url(url)} is not a database URL or a journal file (.log): {error}"
        ) from None
    dialect = parsed.get_backend_name()
    if dialect == "sqlite":
        return {"timeout": 60}
    args: dict[str, Any] = {}
    if dialect == "postgresql" and "connect_timeout" not in parsed.query:
        args["connect_timeout"] = CONNECT_TIMEOUT_S
    if parsed.password is None and (password := os.environ.get(PASSWORD_ENV)):
        args["password"] = password
    return args


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

    cause = _sqlalchemy_error(error)
    return isinstance(cause, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError) or (
        isinstance(cause, sqlalchemy.exc.DBAPIError) and cause.connection_invalidated
    )


def never_connected(error: BaseException) -> bool:
    """Whether ``error`` is a failure to connect at all, not of a statement on a connection.

    SQLAlchemy raises a failed connect without a statement; a statement that met a busy
    database (a locked SQLite file) carries its SQL and is retried even at first contact.
    """
    return lost_connection(error) and getattr(_sqlalchemy_error(error), "statement", "") is None


def wait_for_database(
    call: Callable[[], T],
    patience_s: float = 600.0,
    url: str | None = None,
    on_back: Callable[[], None] | None = None,
) -> T:
    """``call()``, made again while the database cannot be reached, for up to ``patience_s``.

    With ``url``, a database that this process never connected to is not waited for: failing to
    connect to it is a StorageError at once. ``on_back`` runs when a call got through after failing.
    """
    if url is not None and url not in _ANSWERED:
        try:
            result = call()
        except Exception as error:
            if never_connected(error):
                raise StorageError(_never_answered(url, error)) from error
            if not lost_connection(error):
                raise
        else:
            _ANSWERED.add(url)
            return result
    lost = False

    def noted(error: BaseException) -> bool:
        nonlocal lost
        if lost_connection(error):
            log.warning("study database unreachable, retrying: %s", str(error).splitlines()[0][:200])
            lost = True
            return True
        return False

    result = retrying(noted, deadline_s=patience_s, initial_wait_s=0.5, backoff_cap_s=RECONNECT_BACKOFF_CAP_S)(call)
    if url is not None:
        _ANSWERED.add(url)
    if lost and on_back is not None:
        on_back()
    return result


def _sqlalchemy_error(error: BaseException) -> BaseException:
    return error.__cause__ if isinstance(error, optuna.exceptions.StorageInternalError) and error.__cause__ else error


def _never_answered(url: str, error: BaseException) -> str:
    cause = _sqlalchemy_error(error)
    reason = " ".join(str(getattr(cause, "orig", None) or cause).split())  # libpq's lines, one line
    return (
        f"storage: cannot open {mask_url(url)}: {mask_url(reason)}. Check the storage setting: the"
        " database must exist (createdb) and let this user in; a password may also come from"
        f" {PASSWORD_ENV}, or PGPASSWORD / ~/.pgpass for PostgreSQL"
    )


class ReconnectingStorage(BaseStorage, BaseHeartbeat):
    """An RDBStorage whose calls wait for the database to come back, up to ``patience_s``.

    Every storage method, the heartbeat's included, goes to the wrapped storage; a call that failed
    because the connection was lost is made again. Optuna's own storages give up at once, so a
    database restart would fail the running trials, kill their heartbeat threads and end workers.
    A write whose commit reached the database just before the connection died is made twice; the
    storage's writes are idempotent except creating a trial, whose stray copy stays WAITING/RUNNING
    without a heartbeat and is failed as stale.

    Heartbeats cannot be written while the database is away, so after an outage every trial looks
    silent: for ``settle_s`` after the database came back this storage judges none stale, which
    gives live workers time to write theirs again (their own waits end within a retry's wait).
    """

    def __init__(
        self,
        inner: optuna.storages.RDBStorage,
        patience_s: float,
        settle_s: float | None = None,
        claims_file: str | None = None,
    ) -> None:
        from filelock import FileLock

        self.inner = inner
        self.patience_s = patience_s
        self.settle_s = settle_s
        self.claims_file = claims_file
        self.back_at: float | None = None  # time.monotonic() when the database last came back
        self._claims = threading.Lock()
        self._process_claims = FileLock(claims_file) if claims_file else contextlib.nullcontext()

    def __getstate__(self) -> dict[str, Any]:
        return {
            "inner": self.inner,
            "patience_s": self.patience_s,
            "settle_s": self.settle_s,
            "claims_file": self.claims_file,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def waiting(self, call: Callable[[], T]) -> T:
        """``call()`` on the wrapped storage, waiting for the database while it is away."""
        return wait_for_database(call, self.patience_s, on_back=self._came_back)

    def settling(self) -> bool:
        """Whether the database came back less than ``settle_s`` ago."""
        if self.settle_s is None or self.back_at is None:
            return False
        return time.monotonic() - self.back_at < self.settle_s

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        stale = self.waiting(lambda: self.inner._get_stale_trial_ids(study_id))
        if stale and self.settling():  # also when this very call waited out the outage
            log.info("study database back from an outage: trials %s not judged stale yet", stale)
            return []
        return stale

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        # Optuna claims a queued trial (WAITING -> RUNNING) by a read, then a write; SQLite ignores
        # its FOR UPDATE, so two threads of one process (parallel remote trials) could both claim
        # one retry and pay for two jobs. One state change at a time per process closes that, and
        # on SQLite a file lock beside the database does the same for its worker processes (two
        # workers both claimed one queued confirmation trial without it).
        with self._claims, self._process_claims:
            return self.waiting(lambda: self.inner.set_trial_state_values(trial_id, state, values))

    def _came_back(self) -> None:
        self.back_at = time.monotonic()


def _delegate(name: str) -> Callable[..., Any]:
    def call(self: ReconnectingStorage, *args: Any, **kwargs: Any) -> Any:
        return self.waiting(lambda: getattr(self.inner, name)(*args, **kwargs))

    call.__name__ = name
    return call


_METHODS = {n for base in (BaseStorage, BaseHeartbeat) for n in vars(base) if callable(vars(base)[n])}
for _name in sorted(n for n in _METHODS if not n.startswith("__") and n not in vars(ReconnectingStorage)):
    setattr(ReconnectingStorage, _name, _delegate(_name))
abc.update_abstractmethods(ReconnectingStorage)
