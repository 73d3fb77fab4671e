"""Optuna storages by URL, against a real PostgreSQL: a fresh database per test, dropped after.

The server is read from HARNESS_TEST_POSTGRES_URL (default: this project's machines, user postgres
with trust authentication on 127.0.0.1:5432). An unreachable server skips, except under CI=true,
where it is a failure: CI must not pass by testing nothing.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import optuna
import pytest
from optuna.trial import TrialState

from harness.storage import HeartbeatOptions, load_study, make_storage


def study_names(url: str) -> list[str]:
    """Read straight from the database, not through Optuna: the study really lives there."""
    import psycopg
    from sqlalchemy.engine import make_url

    libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq) as connection:
        return [row[0] for row in connection.execute("SELECT study_name FROM studies ORDER BY study_name")]


def test_a_study_on_postgresql_is_created_and_read_back(postgres_url: str) -> None:
    storage = make_storage(postgres_url)
    assert isinstance(storage.inner, optuna.storages.RDBStorage)
    study = optuna.create_study(study_name="pg-study", storage=storage, direction="minimize")
    study.set_user_attr("harness.note", "written by the test")
    study.optimize(lambda trial: (trial.suggest_float("x", -1.0, 1.0) - 0.25) ** 2, n_trials=3)

    again = load_study("pg-study", postgres_url)  # a new storage: a new engine and connections
    assert again.user_attrs == {"harness.note": "written by the test"}
    assert [t.state for t in again.trials] == [optuna.trial.TrialState.COMPLETE] * 3
    assert [t.params for t in again.trials] == [t.params for t in study.trials]
    assert again.best_value == pytest.approx(min(t.value for t in study.trials))
    assert study_names(postgres_url) == ["pg-study"]


def test_an_unknown_study_on_postgresql_is_a_key_error(postgres_url: str) -> None:
    with pytest.raises(KeyError):
        load_study("never-created", postgres_url)


def test_connections_cut_by_the_server_are_replaced(postgres_url: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    study = optuna.create_study(study_name="cut", storage=make_storage(postgres_url))
    study.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=1)
    url = make_url(postgres_url)
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:  # what a server restart does to a pool
        connection.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (url.database,))
    study.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=2)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 3


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _broken(url: str, part: str) -> str:
    """``url`` with one part that cannot work: nothing else differs from a working URL."""
    from sqlalchemy.engine import make_url

    working = make_url(url)
    broken = {
        "database": working.set(database=f"harness_missing_{uuid.uuid4().hex[:8]}"),
        "role": working.set(username=f"harness_nobody_{uuid.uuid4().hex[:8]}"),
        "host": working.set(host="no-such-host.invalid"),
        "port": working.set(port=_free_port()),  # nothing listens there: connection refused
    }[part]
    return broken.render_as_string(hide_password=False)


@pytest.mark.parametrize("part", ["database", "role", "host", "port"])
def test_a_storage_url_that_never_answered_is_a_configuration_error(postgres_url: str, part: str) -> None:
    """Not retried as an outage would be: the message names the setting, and the store is not waited for."""
    from harness.config import ConfigError
    from harness.storage import StorageError

    url = _broken(postgres_url, part)
    with pytest.raises(StorageError) as raised:
        make_storage(url, reconnect_s=5)  # an outage would be waited for up to 5 s, then OperationalError
    assert isinstance(raised.value, ConfigError)  # the CLI's bad-input path: exit 2
    message = str(raised.value)
    assert message.startswith("storage: cannot open ")
    assert url in message  # no password here: the URL is shown whole


def test_the_study_lock_refuses_a_database_that_never_answered(postgres_url: str) -> None:
    """A worker's first contact with the store is its setup lock: refused there, before MLflow is touched."""
    from harness.storage import StorageError
    from harness.study.coordination import study_lock

    with pytest.raises(StorageError, match="does not exist"), study_lock(_broken(postgres_url, "database"), "setup"):
        pass


@contextmanager
def database_away(url: str) -> Iterator[Callable[[], None]]:
    """The test's own database refuses connections (its others keep running) until ``back()``.

    What a database restart or a network cut looks like to its clients, without stopping a
    server other tests share: open connections are cut, new ones are refused.
    """
    import psycopg
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    admin = make_url(url).set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)

    def execute(statement: str, *args: str) -> None:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(statement, args or None)

    def back() -> None:
        execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')

    execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
    execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", database)
    try:
        yield back
    finally:
        back()


def test_a_store_that_answered_before_is_waited_for_while_it_is_away(postgres_url: str) -> None:
    study = optuna.create_study(study_name="away", storage=make_storage(postgres_url, reconnect_s=120))
    with database_away(postgres_url) as back:
        threading.Timer(3.0, back).start()
        study.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=1)  # waits for it
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE]


def test_an_outage_longer_than_the_grace_period_fails_no_live_trial(postgres_url: str) -> None:
    """Workers heartbeat again once the store is back; until they could, silence is not death.

    A live worker runs a trial (Optuna's heartbeat thread writes every second); its peer looks
    for stale trials while the database is away for longer than the grace period. The peer's
    look waits for the database; once back, it must not fail the live trial, whose heartbeat is
    old only because the database was away.
    """
    from optuna.storages import fail_stale_trials

    heartbeat = HeartbeatOptions(interval_s=1, grace_s=2)
    live = optuna.create_study(study_name="hb", storage=make_storage(postgres_url, heartbeat, reconnect_s=120))
    peer = optuna.load_study(study_name="hb", storage=make_storage(postgres_url, heartbeat, reconnect_s=120))
    release = threading.Event()
    worker = threading.Thread(
        target=live.optimize, args=(lambda trial: release.wait(120) and 0.5,), kwargs={"n_trials": 1}
    )
    worker.start()
    try:
        while not live.get_trials(states=(TrialState.RUNNING,)):
            time.sleep(0.1)
        time.sleep(1.5)  # heartbeats are being written
        with database_away(postgres_url) as back:
            threading.Timer(6.0, back).start()  # three grace periods
            fail_stale_trials(peer)  # the peer's periodic look: it waits for the database
        time.sleep(1.0)
        fail_stale_trials(peer)  # and looks again, soon after it came back
    finally:
        release.set()
        worker.join(60)
    assert [t.state for t in peer.trials] == [TrialState.COMPLETE]
