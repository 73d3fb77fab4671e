"""The ``evaluation`` section of a study config (kept light: no torch or openai imports)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from harness.settings.asserts import Assertion
from harness.settings.base import Frozen, env_var_name

Scorer = Literal["embedding", "rouge_l", "structure", "detail", "judge"]
# Scorers that read only the two texts (no LLM): cheap, deterministic, and what the composite uses.
DeterministicScorer = Literal["embedding", "rouge_l", "structure", "detail"]
DETERMINISTIC: tuple[str, ...] = ("embedding", "rouge_l", "structure", "detail")
# Per-example columns a split table carries, besides the judge's.
COMPOSITE = "consistency"
StructuredOutput = Literal["auto", "json_schema", "json_object", "none"]
# The key each endpoint kind reads when api_key_env is not given; a custom base_url and the local
# llama.cpp servers get none, so a provider's key never travels to a server it does not belong to.
DEFAULT_KEY_ENV: dict[str, str] = {"openai": "OPENAI_API_KEY", "azure_openai": "AZURE_OPENAI_API_KEY"}


class JudgeConfig(Frozen):
    """An OpenAI chat-completions endpoint; API keys come only from the environment."""

    kind: Literal["llama_cpp", "openai", "azure_openai", "base_url"] = "llama_cpp"
    # llama_cpp: a packaged model name ("smollm2") or a GGUF path; otherwise the model/deployment.
    model: str = "smollm2"
    base_url: str | None = None
    api_version: str | None = None
    # The name (never the value) of the environment variable holding this endpoint's key. None:
    # OPENAI_API_KEY for openai, AZURE_OPENAI_API_KEY for azure_openai, no key for base_url (a
    # placeholder is sent); llama_cpp never sends one. See ``key_env``.
    api_key_env: str | None = None
    # None: the packaged consistency rubric; or a path to your own copy, e.g.
    # evals/consistency_rubric.yaml (relative to the working directory).
    rubric: Path | None = None
    concurrency: int = Field(default=4, ge=1)
    # Bounded retries: the SDK's own for transport errors, ours for unparsable answers/refusals.
    max_retries: int = Field(default=2, ge=0)
    timeout_s: float = Field(default=60.0, gt=0)
    use_logprobs: bool = True
    top_logprobs: int = Field(default=5, ge=1, le=20)
    # auto: json_schema for OpenAI/Azure, a schema grammar for llama.cpp, json_object elsewhere.
    structured_output: StructuredOutput = "auto"
    max_tokens: int = Field(default=200, ge=16)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    cache_path: Path | None = Path("mlruns/judge_cache.sqlite")
    # llama_cpp only. llama-cpp-python's server decodes one request at a time, so concurrency
    # comes from several single-threaded server processes; None = min(concurrency, CPU count).
    servers: int | None = Field(default=None, ge=1)
    threads_per_server: int = Field(default=1, ge=1)
    n_ctx: int = Field(default=2048, ge=512)
    startup_timeout_s: float = Field(default=120.0, gt=0)
    # judge-check: controlled variants of this many training references, once per study (cached).
    check: bool = True
    # With check off, an objective may read the judge only when this says so (its runs are tagged
    # harness.judge_unchecked); with check on it changes nothing.
    trust_unchecked: bool = False
    check_size: int = Field(default=8, ge=2)
    # Below this pairwise accuracy (overall) a judge may not be in the objective.
    min_check_accuracy: float = Field(default=0.8, ge=0.0, le=1.0)
    allow_weak: bool = False

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        return env_var_name(value)

    @model_validator(mode="after")
    def _no_key_for_llama_cpp(self) -> JudgeConfig:
        if self.kind == "llama_cpp" and self.api_key_env is not None:
            raise ValueError("a llama_cpp judge never sends a key; use kind base_url for a server that needs one")
        return self

    @property
    def key_env(self) -> str | None:
        """The environment variable whose value is sent as the key; None: send no real key."""
        if self.kind == "llama_cpp":
            return None
        return self.api_key_env or DEFAULT_KEY_ENV.get(self.kind)


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
