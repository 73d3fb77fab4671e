"""The judge gate: a study checks its judge once and refuses one too weak for the objective to read."""

from __future__ import annotations

import logging

from harness.config import ConfigError, StudyConfig
from harness.data.chat import Example
from harness.evaluation.evaluator import Evaluator
from harness.evaluation.judge_check import CheckResult, check_judge
from harness.tracking import Tracker

log = logging.getLogger(__name__)


class WeakJudgeError(ConfigError):
    """The objective reads a judge that ranks controlled variants too poorly to be trusted."""


def unchecked_judge_tags(config: StudyConfig) -> dict[str, str]:
    """An objective that reads a judge never checked (evaluation.judge.trust_unchecked) says so."""
    return {"harness.judge_unchecked": "true"} if config.judge_unchecked else {}


def judge_gate(config: StudyConfig, evaluator: Evaluator | None, train: list[Example]) -> CheckResult | None:
    """Check the judge once per study (cached); refuse a weak judge in the objective."""
    settings = config.evaluation.judge
    if config.judge_unchecked:  # config load refused it unless trust_unchecked is set
        log.warning("the objective reads the judge unchecked (evaluation.judge.trust_unchecked); runs tagged so")
    if evaluator is None or evaluator.judge is None or not settings.check:
        return None
    result, was_cached = check_judge(evaluator.judge, train, settings.check_size, config.evaluation.sample_seed)
    evaluator.skip_judge_counts()
    log.info("judge check %s: overall accuracy %.2f", "(cached)" if was_cached else "", result.accuracy)
    weak = result.accuracy < settings.min_check_accuracy
    if weak and config.objective.judge_inputs and not settings.allow_weak:
        raise WeakJudgeError(
            f"evaluation.judge: {settings.kind}:{settings.model} ranks controlled variants of the training"
            f" answers right {result.accuracy:.0%} of the time, below judge.min_check_accuracy"
            f" {settings.min_check_accuracy:.0%}, and the objective {config.objective.inputs} reads it."
            " See `harness judge-check CONFIG`; use a stronger judge, take the judge out of the objective,"
            " or pass --allow-weak-judge"
        )
    if weak and config.objective.judge_inputs and config.evaluation.during_training.enabled:
        raise WeakJudgeError(
            f"evaluation.during_training: the objective reads the judge, which ranks controlled variants right"
            f" {result.accuracy:.0%} of the time (below judge.min_check_accuracy): trials would be pruned and"
            " their checkpoints kept on its say-so; turn during_training off or use a judge that passes the check"
        )
    if weak:
        log.warning("the judge is weak (accuracy %.2f): reported, not trusted", result.accuracy)
    return result


def log_judge_check(tracker: Tracker, parent_id: str, config: StudyConfig, check: CheckResult) -> None:
    """The judge's check on the parent run: metrics, a table of every pair, and a weak-judge tag."""
    tracker.log_metrics(parent_id, check.metrics())
    tracker.log_table(parent_id, check.rows, "judge_check.json")
    weak = check.accuracy < config.evaluation.judge.min_check_accuracy
    tracker.set_tags(
        parent_id, {"harness.judge_check_accuracy": f"{check.accuracy:.3f}", "harness.judge_weak": str(weak).lower()}
    )
