"""The storage password: refused at once when wrong, masked in messages, and optionally kept out of
the URL (HARNESS_STORAGE_PASSWORD, or libpq's PGPASSWORD and password file). Against a private
PostgreSQL server that checks passwords (tests/private_postgres.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from harness.storage import StorageError, make_storage
from harness.study.coordination import study_lock
from tests.private_postgres import PASSWORD, PrivatePostgres, running_private_postgres


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    with running_private_postgres() as server:
        yield server


@pytest.fixture
def no_password_around(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Neither the harness's nor libpq's password sources are set, whatever the environment has."""
    for name in ("HARNESS_STORAGE_PASSWORD", "PGPASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))


def _study_round_trip(url: str) -> None:
    study = optuna.create_study(study_name="pw", storage=make_storage(url))
    study.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=1)
    assert [t.state for t in optuna.load_study(study_name="pw", storage=make_storage(url)).trials] == [
        optuna.trial.TrialState.COMPLETE
    ]


@pytest.mark.usefixtures("no_password_around")
def test_a_wrong_password_is_refused_at_once_and_never_shown(private_postgres: PrivatePostgres) -> None:
    url = private_postgres.url(password="not-the-Password")
    with pytest.raises(StorageError) as raised:
        make_storage(url, reconnect_s=5)
    message = str(raised.value)
    assert "password authentication failed" in message
    assert "not-the-Password" not in message
    assert private_postgres.url(password="***") in message


@pytest.mark.usefixtures("no_password_around")
def test_no_password_anywhere_says_where_one_may_come_from(private_postgres: PrivatePostgres) -> None:
    with pytest.raises(StorageError, match="HARNESS_STORAGE_PASSWORD"):
        make_storage(private_postgres.url(password=None), reconnect_s=5)


@pytest.mark.usefixtures("no_password_around")
def test_the_password_may_come_from_harness_storage_password(
    private_postgres: PrivatePostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = private_postgres.create_database("from_env").replace(f":{PASSWORD}@", "@")
    monkeypatch.setenv("HARNESS_STORAGE_PASSWORD", PASSWORD)
    _study_round_trip(url)
    with study_lock(url, "setup", timeout_s=10):  # the workers' setup lock connects on its own
        pass


@pytest.mark.usefixtures("no_password_around")
def test_libpq_reads_pgpassword_and_the_password_file(
    private_postgres: PrivatePostgres, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Not the harness's doing: libpq's own sources work because the URL leaves the password out."""
    url = private_postgres.create_database("from_libpq").replace(f":{PASSWORD}@", "@")
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    _study_round_trip(url)
    monkeypatch.delenv("PGPASSWORD")
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"127.0.0.1:{private_postgres.port}:*:postgres:{PASSWORD}\n")
    pgpass.chmod(0o600)  # libpq ignores a password file others can read
    monkeypatch.setenv("PGPASSFILE", str(pgpass))
    optuna.delete_study(study_name="pw", storage=make_storage(url))
    _study_round_trip(url)
