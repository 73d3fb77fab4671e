"""Which harness wrote a logged model, and whether this one may load it.

A model is logged *by reference* (MLflow "models from code"): its artifacts hold the short code
file :mod:`harness.lifecycle.chat_model`, ``harness_model.json`` and the weights, never pickled
objects. Loading runs the harness installed here on files an earlier harness wrote, so what must
match is the layout of those files: the model format, numbered below. Every model records the
harness version and format that wrote it (MLmodel ``metadata``, the ``model_config`` its code is
loaded with, and its registered version's tags). A model with no record (harness before format 2
pickled its class with cloudpickle) or with another format is refused with a message naming both
harness versions, before MLflow unpickles or runs anything of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from harness.models import ModelError

# 1: a cloudpickled ChatModel, no record (harness 0.1.0 before models from code). 2: models from code.
MODEL_FORMAT = 2
VERSION_KEY = "harness_version"
FORMAT_KEY = "harness_model_format"
# On registered versions, where `harness models` and the MLflow UI show them.
TAG_HARNESS_VERSION = "harness.harness_version"
TAG_MODEL_FORMAT = "harness.model_format"


class IncompatibleModel(ModelError):
    """A logged model this harness does not load: written by an unknown or incompatible harness."""


def harness_version() -> str:
    try:
        return version("harness")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def stamp() -> dict[str, Any]:
    """What a model records about the harness that wrote it."""
    return {VERSION_KEY: harness_version(), FORMAT_KEY: MODEL_FORMAT}


def version_tags() -> dict[str, str]:
    """The same record as registered-version tags."""
    return {TAG_HARNESS_VERSION: harness_version(), TAG_MODEL_FORMAT: str(MODEL_FORMAT)}


def readable_tags(tags: Mapping[str, str]) -> bool:
    """Whether a registered version's tags say this harness can load it."""
    return tags.get(TAG_MODEL_FORMAT) == str(MODEL_FORMAT)


def check(record: Mapping[str, Any] | None, model: str) -> None:
    """Pure: raise IncompatibleModel unless ``record`` (a model's stamp) is this harness's format."""
    record = record or {}
    here = f"this harness ({harness_version()}) loads model format {MODEL_FORMAT} only"
    written = record.get(VERSION_KEY)
    if written is None or FORMAT_KEY not in record:
        raise IncompatibleModel(
            f"{model} records no harness version: it was written by an unknown or older harness, which stored"
            f" pickled code; {here}. Load it with the harness that wrote it, or register its trial run again"
            " with this one (harness promote CONFIG --run RUN_ID --force)"
        )
    if str(record[FORMAT_KEY]) != str(MODEL_FORMAT):
        raise IncompatibleModel(
            f"{model} was written by harness {written} in model format {record[FORMAT_KEY]}; {here}."
            f" Load it with harness {written}"
        )


def check_model(model_uri: str) -> None:
    """Read the model's MLmodel file (nothing else is fetched) and refuse it unless this harness can
    load it. Uses the fluent tracking URI for ``models:/`` URIs."""
    from mlflow.models import get_model_info

    check(get_model_info(model_uri).metadata, model_uri)


def requirements() -> list[str]:
    """Pinned from this environment: MLflow's own inference would load the model to find them."""
    pinned = []
    for package in ("mlflow", "torch", "transformers", "peft", "openai"):
        try:
            pinned.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            continue
    return pinned
