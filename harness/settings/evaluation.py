"""The ``evaluation`` section of a study config (kept light: no torch or openai imports)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from harness.endpoints.endpoint import OpenAIEndpoint
from harness.settings.asserts import Assertion
from harness.settings.frozen import Frozen

Scorer = Literal["embedding", "rouge_l", "structure", "detail", "judge"]
# Scorers that read only the two texts (no LLM): cheap, deterministic, and what the composite uses.
DeterministicScorer = Literal["embedding", "rouge_l", "structure", "detail"]
DETERMINISTIC: tuple[str, ...] = ("embedding", "rouge_l", "structure", "detail")
# Per-example columns a split table carries, besides the judge's.
COMPOSITE = "consistency"
StructuredOutput = Literal["auto", "json_schema", "json_object", "none"]


class JudgeConfig(OpenAIEndpoint):
    """The LLM judge: an OpenAI-protocol endpoint (kind, model, key, concurrency, timeouts,
    llama.cpp servers: see ``OpenAIEndpoint``) and how it scores. ``max_retries`` bounds the
    SDK's retries of transport errors and, here, the judge's own of unparsable replies/refusals."""

    role: ClassVar[str] = "judge"
    key_setting: ClassVar[str | None] = "evaluation.judge.api_key_env"

    # None: the packaged consistency rubric; or a path to your own copy, e.g.
    # evals/consistency_rubric.yaml (relative to the working directory).
    rubric: Path | None = None
    use_logprobs: bool = True
    top_logprobs: int = Field(default=5, ge=1, le=20)
    # auto: json_schema for OpenAI/Azure, a schema grammar for llama.cpp, json_object elsewhere.
    structured_output: StructuredOutput = "auto"
    cache_path: Path | None = Path("mlruns/judge_cache.sqlite")
    # judge-check: controlled variants of this many training references, once per study (cached).
    check: bool = True
    # With check off, an objective may read the judge only when this says so (its runs are tagged
    # harness.judge_unchecked); with check on it changes nothing.
    trust_unchecked: bool = False
    check_size: int = Field(default=8, ge=2)
    # Below this pairwise accuracy (overall) a judge may not be in the objective.
    min_check_accuracy: float = Field(default=0.8, ge=0.0, le=1.0)
    allow_weak: bool = False


class DuringTrainingConfig(Frozen):
    """The objective measured at checkpoints while a local trial trains (its curve, pruning, keep: best).

    ``true``/``false`` in a config stand for ``{enabled: ...}``.
    """

    enabled: bool = False
    # None: at the end of each epoch; N: every N optimizer steps (and so the same number of
    # examples seen at each checkpoint only for trials of the same batch size).
    every_steps: int | None = Field(default=None, ge=1)
    # None: every held-out prompt the final evaluation answers; N: a fixed-seed sample of N of them,
    # the same for every trial and the baseline.
    heldout_size: int | None = Field(default=None, ge=1)
    # Picks the subset and the one shuffled prompt order the Wilcoxon pruner's steps follow.
    seed: int = 0

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"enabled": value} if isinstance(value, bool) else value


class StabilityConfig(Frozen):
    """Answer every held-out prompt ``samples`` more times, sampling at ``temperature``: whether the
    model answers alike without greedy decoding (``stability/heldout/sampled_*``). Scores stay greedy."""

    samples: int = Field(ge=2)
    temperature: float = Field(default=0.7, gt=0.0, le=2.0)
    seed: int = 0


def _default_weights() -> dict[str, float]:
    return {"structure": 0.3, "embedding": 0.3, "detail": 0.2, "rouge_l": 0.2}


class EvaluationConfig(Frozen):
    enabled: bool = True
    scorers: tuple[Scorer, ...] = ("embedding", "rouge_l", "structure", "detail", "judge")
    # The per-example `consistency` composite: a weighted mean of the deterministic scorers that
    # ran (weights renormalised over them). Layout and content weigh most: they are what a
    # fine-tune changes and what a user reads first.
    consistency_weights: dict[DeterministicScorer, float] = Field(default_factory=_default_weights)
    # None: as many as the held-out sample (an equal-size train sample); 0: no train split.
    train_sample_size: int | None = Field(default=None, ge=0)
    # None: every held-out (validation) example; a number: a fixed-seed sample of them.
    heldout_sample_size: int | None = Field(default=None, ge=1)
    sample_seed: int = 0
    # A cap: each split generates at most its longest reference's tokens x (1 + length_margin)
    # + 16, so no time goes to tokens no reference needs while a much longer answer still shows.
    max_new_tokens: int = Field(default=256, ge=1)
    length_margin: float = Field(default=0.5, ge=0.0)
    batch_size: int = Field(default=8, ge=1)
    baseline: bool = True
    # Paired bootstrap intervals of each trial against the baseline, on the same prompts.
    confidence_level: float = Field(default=0.9, gt=0.5, lt=1.0)
    bootstrap_resamples: int = Field(default=2000, ge=100)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    # Checks every example of a split gets besides its own "assert" list (promptfoo's defaultTest),
    # e.g. {heldout: [{type: icontains, value: "v2"}]}: an answer is correct when all of them pass.
    asserts: dict[Literal["train", "heldout"], tuple[Assertion, ...]] = Field(default_factory=dict)
    during_training: DuringTrainingConfig = Field(default_factory=DuringTrainingConfig)
    # Off by default: sampled answers cost `samples` more generations per held-out prompt.
    stability: StabilityConfig | None = None

    @field_validator("consistency_weights")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        if any(w < 0 for w in value.values()) or not any(w > 0 for w in value.values()):
            raise ValueError("weights must be >= 0 with at least one > 0")
        return value

    @property
    def composite_scorers(self) -> tuple[str, ...]:
        """The deterministic scorers the composite is made of (those that run, weight > 0)."""
        return tuple(s for s in DETERMINISTIC if s in self.scorers and self.consistency_weights.get(s, 0) > 0)
