"""The evaluation digest names what changes the answers and scores, and nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from harness.data.chat import Example
from harness.evaluation.evaluator import ANSWERING_FIELDS, JUDGE_SCORING_FIELDS, Evaluator, evaluation_digest
from harness.settings.evaluation import EvaluationConfig, JudgeConfig
from harness.tracking import Tracker

NO_JUDGE = ("rouge_l", "structure", "detail")
# Settings that change how or whether answers and scores are obtained, never their values.
OPERATIONAL = {
    "enabled",
    "baseline",
    "confidence_level",
    "bootstrap_resamples",
    # counted through the examples they pick
    "train_sample_size",
    "heldout_sample_size",
    "sample_seed",
    # scores checkpoints while training: changes which model is kept, not how the final one is scored
    "during_training",
}
JUDGE_OPERATIONAL = {
    "api_key_env",
    "rubric",  # counted by content (its hash)
    "concurrency",
    "max_retries",
    "timeout_s",
    "cache_path",
    "servers",
    "threads_per_server",
    "startup_timeout_s",
    "check",
    "trust_unchecked",
    "check_size",
    "min_check_accuracy",
    "allow_weak",
}


def example(question: str, answer: str, line: int) -> Example:
    messages = ({"role": "user", "content": question}, {"role": "assistant", "content": answer})
    return Example(messages, f"data.jsonl:{line}")


SPLITS = {
    "train": [example("How do I list files?", "Use `ls`.\n\n**Tip:** `ls -la` shows hidden ones.", 1)],
    "heldout": [example("How do I copy a file?", "Use `cp a b`.\n\n**Tip:** `cp -r` copies folders.", 2)],
}


def settings(scorers: tuple[str, ...] = NO_JUDGE, **changes: Any) -> EvaluationConfig:
    return EvaluationConfig.model_validate({"scorers": list(scorers), **changes})


def digest_of(config: EvaluationConfig, splits: dict[str, list[Example]] = SPLITS, rubric: str | None = "r1") -> str:
    return evaluation_digest(config, splits, rubric if "judge" in config.scorers else None)


@pytest.mark.parametrize(
    "changes",
    [
        {"judge": {"model": "gpt-4o-mini", "kind": "openai"}},
        {"judge": {"concurrency": 9, "temperature": 0.7}},
        {"confidence_level": 0.95, "bootstrap_resamples": 500, "baseline": False},
        {"consistency_weights": {"structure": 0.3, "detail": 0.2, "rouge_l": 0.2, "embedding": 0.9}},
    ],
    ids=["judge-model", "judge-settings", "intervals", "weight-of-a-scorer-that-does-not-run"],
)
def test_what_changes_no_answer_or_score_keeps_the_digest(changes: dict[str, Any]) -> None:
    assert digest_of(settings(**changes)) == digest_of(settings())


@pytest.mark.parametrize(
    "changes",
    [
        {"max_new_tokens": 64},
        {"length_margin": 1.0},
        {"batch_size": 2},
        {"scorers": ["rouge_l", "structure"]},
        {"consistency_weights": {"structure": 0.9, "detail": 0.2, "rouge_l": 0.2}},
        {"asserts": {"heldout": [{"type": "contains", "value": "cp"}]}},
        {"stability": {"samples": 3}},
    ],
)
def test_what_changes_answers_or_scores_changes_the_digest(changes: dict[str, Any]) -> None:
    scorers = tuple(changes.pop("scorers", NO_JUDGE))
    assert digest_of(settings(scorers, **changes)) != digest_of(settings())


def test_other_examples_change_the_digest_and_the_sampling_settings_count_only_through_them() -> None:
    fewer = {"train": [], "heldout": SPLITS["heldout"]}
    assert digest_of(settings(), fewer) != digest_of(settings())
    assert digest_of(settings(sample_seed=7)) == digest_of(settings())


def test_checks_and_groups_on_the_examples_change_the_digest() -> None:
    from dataclasses import replace

    from harness.settings.asserts import Assertion

    held = SPLITS["heldout"][0]
    checked = replace(held, checks=(Assertion(type="contains", value="cp"),))
    grouped = replace(held, group="copy")
    base = digest_of(settings())
    assert digest_of(settings(), {**SPLITS, "heldout": [checked]}) != base
    assert digest_of(settings(), {**SPLITS, "heldout": [grouped]}) != base
    assert digest_of(settings(), {**SPLITS, "heldout": [replace(checked, threshold=0.5)]}) != digest_of(
        settings(), {**SPLITS, "heldout": [checked]}
    )


def test_a_judge_that_scores_counts_by_what_changes_its_verdicts() -> None:
    with_judge = (*NO_JUDGE, "judge")
    base = digest_of(settings(with_judge))
    assert base != digest_of(settings())
    assert digest_of(settings(with_judge, judge={"model": "other.gguf"})) != base
    assert digest_of(settings(with_judge, judge={"temperature": 0.5})) != base
    assert digest_of(settings(with_judge), rubric="r2") != base
    assert digest_of(settings(with_judge, judge={"concurrency": 8, "check": False, "timeout_s": 5})) == base


def test_every_setting_is_either_digested_or_known_not_to_change_scores() -> None:
    """A new setting must be placed on one side of the line, not land on either by default."""
    digested = {"scorers", "consistency_weights", "judge", "asserts", "stability", *ANSWERING_FIELDS}
    assert set(EvaluationConfig.model_fields) <= digested | OPERATIONAL
    assert set(JudgeConfig.model_fields) <= set(JUDGE_SCORING_FIELDS) | JUDGE_OPERATIONAL


class EchoAnswers:
    """An untuned model that repeats the question; enough for rouge and structure to score."""

    def base_answerer(self) -> Any:
        return lambda prompts, max_new_tokens=None: [p[-1]["content"] for p in prompts]

    def baseline_metrics(self) -> dict[str, float]:
        return {}


def test_a_second_sweep_reuses_the_baseline_when_only_the_judge_settings_changed(tmp_path: Path) -> None:
    from harness.study.loop import ensure_baseline

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = Tracker(uri, "s")
    parent = tracker.parent_run("s", {})

    def sweep(config: EvaluationConfig) -> None:
        ensure_baseline(EchoAnswers(), Evaluator(config, tracker, SPLITS), tracker, parent, {})

    sweep(settings())
    sweep(settings(judge={"model": "gpt-4o-mini", "kind": "openai"}))
    baselines = MlflowClient(uri).search_runs([tracker.experiment_id], "tags.`harness.role` = 'baseline'")
    assert len(baselines) == 1
    sweep(settings(max_new_tokens=32))  # shorter answers: a baseline of its own
    baselines = MlflowClient(uri).search_runs([tracker.experiment_id], "tags.`harness.role` = 'baseline'")
    assert len(baselines) == 2


def test_a_baseline_of_another_base_model_is_not_reused(tmp_path: Path) -> None:
    """Same study name, same evaluation, another base_model: the old base's answers do not count."""
    from mlflow import MlflowClient

    from harness.study.loop import ensure_baseline

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = Tracker(uri, "s")
    parent = tracker.parent_run("s", {})

    def sweep(base: str) -> None:
        tags = {"harness.base_model": base}
        ensure_baseline(EchoAnswers(), Evaluator(settings(), tracker, SPLITS), tracker, parent, tags)

    sweep("models/a")
    sweep("models/a")
    sweep("models/b")
    baselines = MlflowClient(uri).search_runs([tracker.experiment_id], "tags.`harness.role` = 'baseline'")
    assert sorted(r.data.tags["harness.base_model"] for r in baselines) == ["models/a", "models/b"]
