"""Optuna storages by URL, against a real PostgreSQL: a fresh database per test, dropped after.

The server is read from HARNESS_TEST_POSTGRES_URL (default: this project's machines, user postgres
with trust authentication on 127.0.0.1:5432). An unreachable server skips, except under CI=true,
where it is a failure: CI must not pass by testing nothing.
"""

from __future__ import annotations

import optuna
import pytest

from harness.storage import load_study, make_storage


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
