"""Metric names, formatted and parsed here and nowhere else.

An evaluation logs ``{family}/{split}/{scorer}`` (a mean over the split's examples, e.g.
``consistency/heldout/rouge_l``), and for a trial the paired difference to the untuned baseline
on the same prompts, ``..._vs_baseline``, with its interval ``..._vs_baseline_ci_low`` /
``..._vs_baseline_ci_high``. Users write these keys in ``objective.metric`` and read them in
MLflow, so every module that makes or reads one goes through :class:`MetricName`; adding a family
or a suffix is a change to this file. Bottom layer: imports nothing from the harness.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

# Families: what a score says about the answers.
CONSISTENCY = "consistency"  # alike the reference answers (layout, detail, wording, content, judge)
TASK = "task"  # right: every check on the answer passes
STABILITY = "stability"  # alike each other: answers to one question's paraphrases or samples
FAMILIES = (CONSISTENCY, TASK, STABILITY)

# Splits: what was answered.
TRAIN = "train"  # a fixed sample of the training examples
HELDOUT = "heldout"  # the held-out examples
ANSWERS = "answers"  # answers made anywhere, scored by ``harness score``
STUDY_SPLITS = (TRAIN, HELDOUT)  # what a study's evaluation scores
SPLITS = (*STUDY_SPLITS, ANSWERS)

# Suffixes: the paired difference to the baseline and the ends of its interval.
VS_BASELINE = "vs_baseline"
CI_LOW = "ci_low"
CI_HIGH = "ci_high"
SUFFIXES = (VS_BASELINE, f"{VS_BASELINE}_{CI_LOW}", f"{VS_BASELINE}_{CI_HIGH}")

# The judge's scorers: its overall score, one per rubric criterion, and how many it failed to give.
JUDGE = "judge"
JUDGE_MISSING = f"{JUDGE}_missing"

# The task family's scores: the share of checked examples answered right, and of questions (groups
# of paraphrases) all of whose checked answers were right.
ACCURACY = "accuracy"
GROUP_ACCURACY = "group_accuracy"
TASK_SCORERS = (ACCURACY, GROUP_ACCURACY)
# The stability family's: over a question's paraphrases, the share of questions answered all right
# or all wrong and the answers' mean pairwise similarity; the same over sampled answers to a prompt.
CORRECT_AGREEMENT = "correct_agreement"
ANSWER_AGREEMENT = "answer_agreement"
SAMPLED_AGREEMENT = "sampled_agreement"
SAMPLED_ANSWER_AGREEMENT = "sampled_answer_agreement"
STABILITY_SCORERS = (CORRECT_AGREEMENT, ANSWER_AGREEMENT, SAMPLED_AGREEMENT, SAMPLED_ANSWER_AGREEMENT)

# Metrics outside the families: the objective as logged, the judge check's, the evaluation's time.
OBJECTIVE = "objective"
JUDGE_CHECK = "judge_check"
EVAL_SECONDS = "eval_seconds"
EVAL_GENERATION_SECONDS = "eval_generation_seconds"
# Seconds spent mirroring the evaluated rows into MLflow's GenAI evaluation (mlflow.genai_mirror).
EVAL_MIRROR_SECONDS = "eval_mirror_seconds"
# What measuring the objective during training costs (evaluation.during_training): seconds to answer and
# score one checkpoint (a curve), their mean, an epoch's training seconds, and the ratio of the two means.
CHECKPOINT_EVAL_SECONDS = "checkpoint_eval_seconds"
CHECKPOINT_EVAL_SECONDS_MEAN = f"{CHECKPOINT_EVAL_SECONDS}_mean"
EPOCH_TRAIN_SECONDS_MEAN = "epoch_train_seconds_mean"
CHECKPOINT_COST_RATIO = "checkpoint_cost_ratio"

EXAMPLE = f"{CONSISTENCY}/{HELDOUT}/rouge_l"


@dataclass(frozen=True)
class MetricName:
    """``{family}/{split}/{scorer}`` with an optional suffix from :data:`SUFFIXES`."""

    family: str
    split: str
    scorer: str
    suffix: str | None = None

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            self._bad(f"the family must be one of {', '.join(FAMILIES)}")
        if self.split not in SPLITS:
            self._bad(f"the split must be one of {', '.join(SPLITS)}")
        if not self.scorer or "/" in self.scorer:
            self._bad("the scorer must be a non-empty name without '/'")
        if self.suffix is not None and self.suffix not in SUFFIXES:
            self._bad(f"the suffix must be one of {', '.join(SUFFIXES)}")
        if _split_suffix(self.scorer)[1] is not None:
            self._bad("the scorer must not end with a suffix (give it as the suffix)")

    def _bad(self, why: str) -> None:
        raise ValueError(f"{self.key!r} is not a metric name: {why}")

    @property
    def key(self) -> str:
        """The MLflow key."""
        leaf = self.scorer if self.suffix is None else f"{self.scorer}_{self.suffix}"
        return f"{self.family}/{self.split}/{leaf}"

    @property
    def short(self) -> str:
        """The key without its family (``heldout/rouge_l``), where the family goes without saying."""
        return self.key.removeprefix(f"{self.family}/")

    @property
    def column(self) -> str:
        """The key's last part: the scorer with its suffix."""
        return self.key.rsplit("/", 1)[1]

    @property
    def base(self) -> MetricName:
        """The mean itself, without a suffix."""
        return replace(self, suffix=None)

    @property
    def is_judge(self) -> bool:
        """Scored by the judge: its overall score, a criterion, or its missing count."""
        return self.scorer == JUDGE or self.scorer.startswith(f"{JUDGE}_")

    def vs_baseline(self) -> MetricName:
        """The paired difference (this model - baseline) on the same prompts."""
        return replace(self, suffix=VS_BASELINE)

    def interval_keys(self) -> tuple[str, str, str]:
        """The keys of the paired difference to the baseline: (mean, interval low, interval high)."""
        return interval_keys(self.vs_baseline().key)

    def logged_keys(self) -> tuple[str, ...]:
        """Every key a trial logs for this score: the mean, its difference and the interval."""
        return (self.base.key, *self.interval_keys())


def interval_keys(key: str) -> tuple[str, str, str]:
    """The keys of an estimate logged under ``key`` with its interval: (key, low, high)."""
    return key, f"{key}_{CI_LOW}", f"{key}_{CI_HIGH}"


def _split_suffix(leaf: str) -> tuple[str, str | None]:
    for suffix in SUFFIXES:
        if leaf.endswith(f"_{suffix}"):
            return leaf.removesuffix(f"_{suffix}"), suffix
    return leaf, None


def parse(key: str) -> MetricName:
    """The name an MLflow key spells; ValueError, naming the key, for anything else."""
    parts = key.split("/")
    if len(parts) != 3:
        raise ValueError(f"{key!r} is not a metric name: expected family/split/scorer, e.g. {EXAMPLE}")
    family, split, leaf = parts
    scorer, suffix = _split_suffix(leaf)
    return MetricName(family, split, scorer, suffix)


def try_parse(key: str) -> MetricName | None:
    """The name ``key`` spells, or None for any other metric (eval_loss, say)."""
    try:
        return parse(key)
    except ValueError:
        return None


def objective_key(name: str | None = None) -> str:
    """How a trial logs its objective: ``objective``, or ``objective/{name}`` for one of several."""
    return OBJECTIVE if name is None else f"{OBJECTIVE}/{name}"


def objective_of(key: str) -> str | None:
    """The objective's name in an ``objective/{name}`` key; None for any other key."""
    head, _, name = key.partition("/")
    return name if head == OBJECTIVE and name else None


def judge_criterion(criterion: str) -> str:
    """The scorer (and table column) of one rubric criterion the judge scores."""
    return f"{JUDGE}_{criterion}"


def judge_check_key(scorer: str, criterion: str, statistic: str) -> str:
    """E.g. ``judge_check/judge/structure/accuracy``: how well a scorer ranks answers on a criterion."""
    return f"{JUDGE_CHECK}/{scorer}/{criterion}/{statistic}"
