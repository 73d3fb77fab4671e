"""A base model that is itself a fine-tune: ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or ``run:RUN_ID``.

A study's ``base_model`` (or ``harness data pairs --model``) may name a model in the MLflow store of
the config's tracking URI. It is resolved once, before anything trains:

1. **pinned**: an alias becomes the version it points at now, so every trial trains from the same
   weights even if the alias moves meanwhile. A spec that names nothing usable (an unknown name,
   alias, version or run; an unfinished run; a remote fine-tune; a run that left no weights) is a
   one-line ConfigError.
2. **materialised**: the full weights (a LoRA adapter merged into its own base, which may be tracked
   in turn) are saved once as an ordinary model directory under ``<harness cache>/lineage/<digest>``,
   the digest of the resolved source (store, pinned spec, run, stored model), so ``models.load_base``
   and ``models.load_tokenizer`` see a plain local directory. Loading goes through
   :func:`harness.lifecycle.serving.load_tracked`, the loader registered versions use.
3. **recorded**: tags on the parent run, every trial run and the versions registered from them
   (:data:`harness.tracking.LINEAGE_TAGS`) say what was written and what it resolved to;
   ``harness.base_model`` holds the pinned spec, which a LoRA version trained on it loads as its base.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness import models
from harness.config import ConfigError, StudyConfig
from harness.lifecycle.serving import load_tracked, tracking_uri
from harness.tracking import (
    TAG_BASE_MODEL,
    TAG_BASE_RUN,
    TAG_BASE_SOURCE,
    TAG_BASE_VERSION,
    TAG_KIND,
    TAG_MODEL_DIR,
    TAG_REMOTE_MODEL,
    TAG_WEIGHTS,
)

REGISTERED = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))$")
RECORD_FILE = "harness_lineage.json"  # beside the materialised weights: where they came from


@dataclass(frozen=True)
class Lineage:
    """What a tracked spec resolved to."""

    spec: str  # as written
    pinned: str  # models:/NAME/VERSION or run:RUN_ID
    run_id: str  # the run whose weights these are ("" for a version registered without a run)
    registered: str | None = None  # NAME/VERSION
    stored: str = ""  # the registered version's storage URI: another store's "NAME/1" is other weights

    def tags(self) -> dict[str, str]:
        tags = {TAG_BASE_MODEL: self.pinned, TAG_BASE_SOURCE: self.spec, TAG_BASE_RUN: self.run_id}
        return tags | ({TAG_BASE_VERSION: self.registered} if self.registered else {})

    def digest(self, store: str) -> str:
        """Names the cache directory: the same resolved weights in the same store, the same directory."""
        key = json.dumps([store, self.pinned, self.run_id, self.stored])
        return hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ResolvedBase:
    """A study config whose base_model is loadable in this process, and the lineage tags to record."""

    config: StudyConfig
    tags: dict[str, str] = field(default_factory=dict)


def _client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _bad(spec: str, problem: str) -> ConfigError:
    return ConfigError(f"base_model {spec!r}: {problem}")


def pin(spec: str, client: Any) -> Lineage:
    """Resolve a tracked spec to what it names now; ConfigError (one line) when that is not usable."""
    if spec.startswith("run:"):
        return _pin_run(spec, client)
    match = REGISTERED.match(spec)
    if match is None:
        raise _bad(spec, "expected models:/NAME@ALIAS, models:/NAME/VERSION or run:RUN_ID")
    from mlflow.exceptions import MlflowException

    name, number, alias = match["name"], match["version"], match["alias"]
    try:
        registered = client.get_registered_model(name)
    except MlflowException:
        first = f"run the study that registers {name} (mlflow.registry_model_name) and `harness promote` it first"
        raise _bad(spec, f"no registered model named {name!r} in this tracking store; {first}") from None
    if alias is not None and alias not in registered.aliases:
        known = ", ".join(sorted(registered.aliases)) or "none"
        option = "" if alias == "champion" else f" --alias {alias}"
        hint = f"`harness promote{option}` the study that registers {name} first"
        raise _bad(spec, f"{name} has no alias {alias!r} (its aliases: {known}); {hint}")
    try:
        version = client.get_model_version(name, str(registered.aliases[alias] if alias else number))
    except MlflowException:
        raise _bad(spec, f"{name} has no version {number}") from None
    if version.tags.get(TAG_KIND) == "remote":
        raise _bad(spec, f"{name}/{version.version} is a remote fine-tune: there are no weights to train from")
    pinned = f"models:/{name}/{version.version}"
    return Lineage(spec, pinned, version.run_id or "", f"{name}/{version.version}", version.source or "")


def _pin_run(spec: str, client: Any) -> Lineage:
    from mlflow.exceptions import MlflowException

    run_id = spec.removeprefix("run:")
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise _bad(spec, f"no run {run_id!r} in this tracking store") from None
    tags = run.data.tags
    if run.info.status != "FINISHED":
        raise _bad(spec, f"run {run_id} is {run.info.status}: only a finished run's weights can be a base")
    if TAG_REMOTE_MODEL in tags:
        raise _bad(spec, f"run {run_id} trained a remote model ({tags[TAG_REMOTE_MODEL]}): no weights to train from")
    local = tags.get(TAG_MODEL_DIR)
    if not (local and Path(local).is_dir()) and not tags.get(TAG_WEIGHTS):
        where = f"{local} is not on this machine" if local else "it has no model directory"
        raise _bad(spec, f"run {run_id} left no weights: {where}, and none were uploaded to the run")
    return Lineage(spec, spec, run_id)


def materialise(lineage: Lineage, store: str) -> Path:
    """The lineage's full weights as a model directory in the harness cache (written once)."""
    target = models.cache_root() / "lineage" / lineage.digest(store)
    if (target / "config.json").exists():
        return target
    with tracking_uri(store):
        loaded = load_tracked(lineage.pinned)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed: a kill leaves no half directory that looks complete.
    staging = Path(tempfile.mkdtemp(prefix=".lineage-", dir=target.parent))
    try:
        loaded.model.save_pretrained(staging)
        loaded.tokenizer.save_pretrained(staging)
        # Not the store's URI: it may carry credentials (the digest covers it).
        (staging / RECORD_FILE).write_text(json.dumps(asdict(lineage), indent=2))
        staging.rename(target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / "config.json").exists():  # not another process finishing first
            raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def resolve_spec(spec: str, store: str) -> tuple[Path, Lineage]:
    """A tracked spec as a local model directory, and what it resolved to."""
    lineage = pin(spec, _client(store))
    return materialise(lineage, store), lineage


def resolve_base(config: StudyConfig) -> ResolvedBase:
    """The config unchanged when its base_model is a packaged, local or hub model; else a copy whose
    base_model is the materialised directory, with the lineage tags."""
    if not config.base_is_weights or not models.is_tracked(config.base_model):
        return ResolvedBase(config)
    path, lineage = resolve_spec(config.base_model, config.mlflow.tracking_uri)
    return ResolvedBase(config.model_copy(update={"base_model": str(path)}), lineage.tags())
