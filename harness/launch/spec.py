"""What every launcher hands its workers: the config they run, its plain settings and the names
of the secrets they read from their environment (never the secrets themselves)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.backends.openai.jobs import SECRET_ENV
from harness.config import ConfigError, StudyConfig
from harness.redaction import mask_url
from harness.storage import PASSWORD_ENV

# Where a cluster worker finds its stores: plain settings, passed as environment variables.
STORAGE_ENV = "HARNESS_STORAGE"
TRACKING_ENV = "MLFLOW_TRACKING_URI"
# Secrets any worker may need; a config's api_key_env settings add theirs.
MLFLOW_SECRETS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
DATA_KEYS = ("train_file", "validation_file")


class LaunchError(ConfigError):
    """What was asked cannot be launched: the reason, before anything is submitted."""


@dataclass(frozen=True)
class Workers:
    """N identical workers, each with its CPUs and GPUs."""

    count: int
    cpus: float = 1
    gpus: int = 0


def job_name(study_name: str) -> str:
    """A name Kubernetes and Slurm both take (a DNS-1123 label): ``harness-<study>``."""
    label = re.sub(r"[^a-z0-9-]+", "-", study_name.lower()).strip("-")
    return f"harness-{label}"[:63].rstrip("-")


def secret_names(config: StudyConfig) -> list[str]:
    """The environment variables a worker of ``config`` may read a secret from, in a stable order."""
    named = sorted({value for key, value in _items(config.model_dump(mode="json")) if key == "api_key_env" and value})
    return list(dict.fromkeys([PASSWORD_ENV, *SECRET_ENV, *MLFLOW_SECRETS, *named]))


def worker_settings(config: StudyConfig, data_paths: Mapping[str, str]) -> dict[str, Any]:
    """The config a launched worker runs, as plain data, its data files where ``data_paths`` says
    (``data.train_file`` and the like by key; a key left out keeps the config's path).

    LaunchError when the config holds a password (in a storage or tracking URL): launched files
    and manifests are read by whoever reads the job, so a password goes in a secret instead.
    """
    settings = config.model_dump(mode="json")
    inline = [key for key, value in _items(settings) if isinstance(value, str) and mask_url(value) != value]
    if inline:
        raise LaunchError(
            f"{', '.join(sorted(set(inline)))}: a URL with a password would be written into the job; "
            f"leave it out of the URL and give it to the workers as the secret {PASSWORD_ENV}"
        )
    return {**settings, "data": {**settings["data"], **data_paths}}


def data_files(config: StudyConfig) -> dict[str, Path]:
    """The data files the config names, by setting (the training file, and the validation file if any)."""
    data = config.model_dump()["data"]
    return {key: Path(data[key]) for key in DATA_KEYS if data.get(key) is not None}


def _items(data: Any) -> list[tuple[str, Any]]:
    """Every (key, value) pair in nested plain data (dicts and lists), at any depth."""
    if isinstance(data, dict):
        return [pair for key, value in data.items() for pair in [(key, value), *_items(value)]]
    if isinstance(data, list):
        return [pair for value in data for pair in _items(value)]
    return []
