"""A storage URL that cannot work stops a command at once with exit 2 and a message naming the
storage setting, before anything is recorded; a password in it is never printed."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from harness.cli import app

runner = CliRunner()
PASSWORD = "pw-Never-Printed"


def _missing_database(postgres_url: str) -> str:
    """The test server with a password (the server trusts any) and a database that does not exist."""
    missing = make_url(postgres_url).set(database=f"harness_missing_{uuid.uuid4().hex[:8]}", password=PASSWORD)
    return missing.render_as_string(hide_password=False)


@pytest.mark.parametrize("command", [["worker", "--quiet"], ["sweep", "--workers", "2"]])
def test_a_study_on_a_database_that_does_not_exist_stops_with_exit_2_and_records_nothing(
    study_yaml: Path, tmp_path: Path, postgres_url: str, command: list[str]
) -> None:
    storage = _missing_database(postgres_url)
    name, *options = command
    result = runner.invoke(app, [name, str(study_yaml), "workers.reconnect_s=5", "--storage", storage, *options])
    assert result.exit_code == 2, result.output
    assert "storage: cannot open postgresql://postgres:***@" in result.output
    assert "does not exist" in result.output
    assert PASSWORD not in result.output
    assert not (tmp_path / "mlruns").exists()  # no MLflow store, experiment or run was made


def test_trials_of_a_store_that_cannot_be_opened_exit_2(postgres_url: str) -> None:
    result = runner.invoke(app, ["trials", "tiny", "--storage", _missing_database(postgres_url)])
    assert result.exit_code == 2, result.output
    assert "storage: cannot open" in result.output
    assert PASSWORD not in result.output


def test_trials_of_an_unknown_study_do_not_print_the_storage_password(postgres_url: str) -> None:
    storage = make_url(postgres_url).set(password=PASSWORD).render_as_string(hide_password=False)
    result = runner.invoke(app, ["trials", "never-created", "--storage", storage])
    assert result.exit_code == 2, result.output
    assert "no study named 'never-created'" in result.output
    assert PASSWORD not in result.output


def test_a_config_error_does_not_print_the_storage_password(study_yaml: Path, postgres_url: str) -> None:
    storage = make_url(postgres_url).set(password=PASSWORD).render_as_string(hide_password=False)
    result = runner.invoke(app, ["worker", str(study_yaml), "n_trials=0", "--storage", storage])
    assert result.exit_code == 2, result.output
    assert "n_trials" in result.output
    assert PASSWORD not in result.output
