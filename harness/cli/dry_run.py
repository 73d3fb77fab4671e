"""``harness sweep --dry-run``: validate, estimate and show the first trials; write nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from harness.cli.common import fail, setup_errors
from harness.config import ConfigError, StudyConfig


def show_dry_run(config: StudyConfig, config_path: Path) -> None:
    """Print what the study would do; a setup problem is a one-line error (exit 2)."""
    from harness import backends
    from harness.lifecycle.lineage import resolve_base
    from harness.study.sampling import sample_params

    try:
        refuse_unmade_base(config, config_path)
        text = backends.create(resolve_base(config).config).dry_run(sample_params(config, config.n_trials or 5))
    except setup_errors() as exc:
        raise fail(str(exc)) from None
    Console().print(text, highlight=False, markup=False, soft_wrap=True)


def refuse_unmade_base(config: StudyConfig, config_path: Path) -> None:
    """A base_model tracked in a local store that does not exist yet names nothing, and looking
    it up would create that store: say what makes it instead."""
    from harness import models
    from harness.tracking import local_store_missing

    uri = config.mlflow.tracking_uri
    if not models.is_tracked(config.base_model) or not local_store_missing(uri):
        return
    raise ConfigError(
        f"base_model {config.base_model!r}: the tracking store {uri} does not exist yet, so it holds no"
        f" model to start from; {first_steps(config.base_model, config_path)}"
    )


def first_steps(spec: str, config_path: Path) -> str:
    """What to run before a study can start from ``spec``: the sibling config that registers it,
    when there is one."""
    from harness.lifecycle.lineage import REGISTERED

    match = REGISTERED.match(spec)
    if match is None:  # run:ID names one run of another store
        return "point mlflow.tracking_uri at the store that holds that run"
    name = match["name"]
    makers = [p for p in sorted(config_path.parent.glob("*.y*ml")) if p != config_path and registers(p, name)]
    if makers:
        return f"run `harness sweep {makers[0]}` and `harness promote {makers[0]}` first"
    return f"run the study that registers {name} (mlflow.registry_model_name) and `harness promote` it first"


def registers(path: Path, name: str) -> bool:
    """Whether the study config at ``path`` registers its best model as ``name`` (read, not validated)."""
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return False
    if not isinstance(raw, dict):
        return False
    tracking = raw.get("mlflow") if isinstance(raw.get("mlflow"), dict) else {}
    return (tracking.get("registry_model_name") or raw.get("study_name")) == name
