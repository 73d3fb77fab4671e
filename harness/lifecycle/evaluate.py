"""Evaluate any model the way a study evaluates its trials, and log it as a run of the study.

A model is named by a spec:

- ``base``: the study's untuned base model (local weights, or the remote base through the API);
- a trial's MLflow run id: the weights (or remote model id) that trial left behind;
- ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS``: a registered model (the run is tagged with
  the version, so a later promotion can reuse these scores instead of measuring again);
- ``openai:MODEL_ID``: any chat-completions model, e.g. ``openai:ft:gpt-4o-mini:org::abc``.

The run is a top-level run (tag ``harness.role = eval``) in the study's experiment, not a child
of the study's parent run: the parent's children are its trials and its baseline.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any

from harness import models
from harness.answering import Answerer
from harness.config import ConfigError, StudyConfig
from harness.data.split import load_splits
from harness.evaluation.evaluator import open_evaluator
from harness.lifecycle.lineage import REGISTERED as _REGISTERED
from harness.lifecycle.lineage import resolve_base
from harness.objective import ObjectiveMetricMissing, objective_metrics, objective_value
from harness.settings.openai import by_deployment
from harness.tracking import EVAL_ROLE, TAG_MODEL_SPEC, TAG_ROLE, TAG_STUDY, Tracker

_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


class ModelSpecError(ConfigError):
    """A --model spec that names nothing loadable."""


@dataclass(frozen=True)
class EvalResult:
    run_id: str
    metrics: dict[str, float]
    eval_digest: str


def generation_settings(config: StudyConfig) -> dict[str, Any]:
    """Exactly how trials generate for evaluation, so scores stay comparable."""
    from harness.device import use_bf16

    settings = config.evaluation
    return {
        "max_new_tokens": settings.max_new_tokens,
        "batch_size": settings.batch_size,
        "bf16": use_bf16(config.precision),
    }


def _remote(config: StudyConfig, model: str) -> Answerer:
    from harness.lifecycle.serving import ModelSpec, RemoteAnswerer

    service, settings = config.chat_service, config.remote_settings
    spec = ModelSpec(
        kind="remote",
        base_model=model,
        backend=service,
        remote_model=model,
        deployment=model if by_deployment(service) else None,  # Azure answers by deployment name
        api_version=settings.api_version if settings is not None else None,
    )
    answerer = RemoteAnswerer(spec)
    default = config.evaluation.max_new_tokens
    return lambda prompts, max_new_tokens=None: answerer(prompts, max_new_tokens=max_new_tokens or default)


def _registered(config: StudyConfig, spec: str, client: Any) -> tuple[Answerer, dict[str, str]]:
    from harness.lifecycle import serving
    from harness.tracking import TAG_REGISTERED, TAG_VERSION

    match = _REGISTERED.match(spec)
    if match is None:
        raise ModelSpecError(f"{spec!r}: expected models:/NAME/VERSION or models:/NAME@ALIAS")
    name, version = match["name"], match["version"]
    if version is None:  # pin the alias now: it may move while we evaluate
        version = client.get_model_version_by_alias(name, match["alias"]).version
    model = serving.load(f"models:/{name}/{version}", config.mlflow.tracking_uri)
    settings = generation_settings(config)

    def answer(prompts: list[Any], max_new_tokens: int | None = None) -> list[str]:
        return model.predict(
            prompts, params={**settings, "max_new_tokens": max_new_tokens or settings["max_new_tokens"]}
        )

    return answer, {TAG_REGISTERED: name, TAG_VERSION: str(version)}


def _trial_run(config: StudyConfig, run_id: str, client: Any) -> Answerer:
    from harness.lifecycle.serving import answerer_for
    from harness.lifecycle.weights import trial_model

    with trial_model(client.get_run(run_id), config, client) as (model_spec, weights):
        answerer = answerer_for(model_spec, weights)  # in memory now: a downloaded copy may go
    return _with_settings(answerer, generation_settings(config))


def _with_settings(answerer: Any, settings: dict[str, Any]) -> Answerer:
    def answer(prompts: list[Any], max_new_tokens: int | None = None) -> list[str]:
        return answerer(prompts, **{**settings, "max_new_tokens": max_new_tokens or settings["max_new_tokens"]})

    return answer


def _base(config: StudyConfig) -> Answerer:
    if not config.base_is_weights:
        return _remote(config, config.base_model)
    from harness.lifecycle.serving import LocalAnswerer

    answerer = LocalAnswerer(models.load_base(config.base_model), models.load_tokenizer(config.base_model))
    return _with_settings(answerer, generation_settings(config))


def token_counter(config: StudyConfig) -> Any:
    """The base model's tokenizer sizes answer budgets, as in the study; remote models estimate."""
    if not config.base_is_weights:
        return None
    return lambda texts: models.count_tokens(config.base_model, texts)


def resolve(config: StudyConfig, spec: str, client: Any) -> tuple[Answerer, dict[str, str]]:
    """The answer function for ``spec`` and the tags that say what it is (loads the model)."""
    if spec == "base":
        return _base(config), {}
    if spec.startswith("openai:"):
        return _remote(config, spec.removeprefix("openai:")), {}
    if spec.startswith("models:/"):
        return _registered(config, spec, client)
    if _RUN_ID.match(spec):
        return _trial_run(config, spec, client), {"harness.source_run_id": spec}
    raise ModelSpecError(f"--model {spec!r}: expected base, a run id, models:/NAME@ALIAS or openai:MODEL_ID")


def evaluate_model(config: StudyConfig, spec: str) -> EvalResult:
    """Load the model (failing before any run exists), evaluate it, log a FINISHED run."""
    if not config.evaluation.enabled:
        raise ConfigError("evaluation.enabled is false in this config: nothing to evaluate with")
    config = resolve_base(config).config  # a base_model that is a tracked fine-tune: its local copy
    tracker = Tracker(config.mlflow.tracking_uri, config.study_name, config.mlflow.artifact_location)
    answer, source_tags = resolve(config, spec, tracker.client)
    train, heldout = load_splits(config.data, config.system_prompt)
    tags = {TAG_ROLE: EVAL_ROLE, TAG_STUDY: config.study_name, TAG_MODEL_SPEC: spec, **source_tags}
    mirror = config.mlflow.genai_mirror
    with open_evaluator(config.evaluation, tracker, train, heldout, token_counter(config), mirror) as evaluator:
        assert evaluator is not None  # enabled, checked above
        run = tracker.client.create_run(tracker.experiment_id, tags=tags, run_name=f"eval {spec}"[:250])
        with tracker.closing(run.info.run_id) as run_id:
            metrics = evaluator.evaluate(answer, run_id)
            # eval_loss, say, is a training metric: evaluation cannot give that objective.
            with contextlib.suppress(ObjectiveMetricMissing):
                metrics |= objective_metrics(config.objective, objective_value(config.objective, metrics))
            tracker.log_metrics(run_id, metrics)
        return EvalResult(run_id, metrics, evaluator.digest)
