"""The objective at a training checkpoint (``evaluation.during_training``): a fixed subset of the
held-out prompts, answered by the model as it is in memory and scored by the scorers the objective
reads, exactly as the final evaluation scores them (same token budget, same batching)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness import metrics
from harness.answering import Answerer
from harness.config import ConfigError
from harness.data.chat import Example
from harness.evaluation.checked import check_split, split_checks
from harness.evaluation.evaluator import Evaluator, example_id, question_of, sample
from harness.evaluation.scoring import SplitScores, score_split
from harness.evaluation.task import Checked
from harness.settings.evaluation import COMPOSITE, DuringTrainingConfig, EvaluationConfig


def scorers_for(inputs: Sequence[str], settings: EvaluationConfig) -> tuple[str, ...]:
    """Pure: the scorers that make the objective's inputs, in the evaluation's order (none for eval_loss)."""
    needed: set[str] = set()
    for name in filter(None, map(metrics.try_parse, inputs)):
        if name.family != metrics.CONSISTENCY:
            continue  # task accuracy is graded by the examples' checks, not by a scorer
        if name.scorer == COMPOSITE:
            needed |= set(settings.composite_scorers)
        elif name.is_judge:
            needed.add(metrics.JUDGE)
        else:
            needed.add(name.scorer)
    return tuple(s for s in settings.scorers if s in needed)


@dataclass(frozen=True)
class CheckpointScorer:
    """Scores checkpoints on ``examples`` (the same for every trial) with ``scorers``, and grades
    the answers with ``checks`` when the objective reads task accuracy."""

    evaluator: Evaluator
    examples: list[Example]
    scorers: tuple[str, ...]
    checks: list[Checked] | None = None

    def score(self, answer: Answerer) -> SplitScores:
        """Held-out means (``consistency/heldout/<scorer>``) and per-prompt rows, in ``examples`` order."""
        settings = self.evaluator.settings
        answers = answer([e.prompt for e in self.examples], max_new_tokens=self.evaluator.budgets[metrics.HELDOUT])
        # The composite only when every scorer it is made of ran: a partial one would be logged as the real one.
        whole = set(settings.composite_scorers) <= set(self.scorers)
        weights = {s: settings.consistency_weights[s] for s in settings.composite_scorers} if whole else None
        scores = score_split(
            metrics.HELDOUT,
            [question_of(e) for e in self.examples],
            [e.reference for e in self.examples],
            answers,
            scorers=self.scorers,
            embedder=self.evaluator.embedder,
            judge=self.evaluator.judge,
            weights=weights,
            ids=[example_id(e) for e in self.examples],
        )
        if self.checks is None:
            return scores
        rows, graded = check_split(metrics.HELDOUT, self.checks, answers, scores.rows, similarity=None)
        return SplitScores(scores.split, scores.metrics | graded, rows)


def checkpoint_scorer(
    evaluator: Evaluator | None, during: DuringTrainingConfig, inputs: Sequence[str]
) -> CheckpointScorer | None:
    """The study's checkpoint scorer; None when the objective needs no answers (eval loss alone)."""
    if evaluator is None or not during.enabled:
        return None
    scorers = scorers_for(inputs, evaluator.settings)
    graded = any((name := metrics.try_parse(n)) is not None and name.family == metrics.TASK for n in inputs)
    if not scorers and not graded:
        return None
    heldout = evaluator.splits.get(metrics.HELDOUT, [])
    if during.heldout_size is not None and during.heldout_size > len(heldout):
        raise ConfigError(
            f"evaluation.during_training.heldout_size: {during.heldout_size} prompts, but the evaluation answers"
            f" {len(heldout)} held-out prompts; checkpoints take a subset of them: lower it or leave it out (all)"
        )
    examples = sample(heldout, during.heldout_size, during.seed)
    checks = split_checks(evaluator.settings, metrics.HELDOUT, examples, [example_id(e) for e in examples])
    return CheckpointScorer(evaluator, examples, scorers, checks if graded else None)
