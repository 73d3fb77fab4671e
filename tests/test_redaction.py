"""Passwords in URLs never reach what the harness records or prints: they become ``***``."""

from __future__ import annotations

import pytest

from harness.redaction import mask_url, masked


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://postgres:pw@db.example/optuna", "postgresql://postgres:***@db.example/optuna"),
        (
            "postgresql+psycopg://u:p%40ss@db:5433/x?sslmode=require",
            "postgresql+psycopg://u:***@db:5433/x?sslmode=require",
        ),
        ("postgresql://u:p@ss@db/x", "postgresql://u:***@db/x"),  # an unquoted "@" in the password
        ("https://user:token@mlflow.example/", "https://user:***@mlflow.example/"),
        (
            "postgresql://db/x?user=u&password=pw&sslmode=require",
            "postgresql://db/x?user=u&password=***&sslmode=require",
        ),
        # Nothing secret: left exactly as written.
        ("postgresql://postgres@127.0.0.1:5432/postgres", "postgresql://postgres@127.0.0.1:5432/postgres"),
        ("sqlite:///mlruns/optuna.db", "sqlite:///mlruns/optuna.db"),
        ("runs/optuna.log", "runs/optuna.log"),
        ("not a url: a:b@c", "not a url: a:b@c"),
    ],
)
def test_a_url_shows_everything_but_its_password(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_every_url_in_nested_data_is_masked_and_the_rest_kept() -> None:
    data = {
        "storage": "postgresql://postgres:pw1@db/optuna",
        "mlflow": {"tracking_uri": "postgresql://mlflow:pw2@db/mlflow", "register_best": True},
        "overrides": ["storage=postgresql://postgres:pw3@db/o", 3],
        "n_trials": 4,
    }
    assert masked(data) == {
        "storage": "postgresql://postgres:***@db/optuna",
        "mlflow": {"tracking_uri": "postgresql://mlflow:***@db/mlflow", "register_best": True},
        "overrides": ["storage=postgresql://postgres:***@db/o", 3],
        "n_trials": 4,
    }
