"""The ``evaluation`` section of a study config (kept light: no torch or openai imports)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Scorer = Literal["embedding", "rouge_l", "judge"]
StructuredOutput = Literal["auto", "json_schema", "json_object", "none"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class JudgeConfig(_Frozen):
    """An OpenAI chat-completions endpoint; API keys come only from the environment."""

    kind: Literal["llama_cpp", "openai", "azure_openai", "base_url"] = "llama_cpp"
    # llama_cpp: a packaged model name ("smollm2") or a GGUF path; otherwise the model/deployment.
    model: str = "smollm2"
    base_url: str | None = None
    api_version: str | None = None
    rubric: Path = Path("evals/consistency_rubric.yaml")
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


class EvaluationConfig(_Frozen):
    enabled: bool = True
    scorers: tuple[Scorer, ...] = ("embedding", "rouge_l", "judge")
    train_sample_size: int = Field(default=8, ge=0)
    # None: every held-out (validation) example; a number: a fixed-seed sample of them.
    heldout_sample_size: int | None = Field(default=None, ge=1)
    sample_seed: int = 0
    max_new_tokens: int = Field(default=192, ge=1)
    batch_size: int = Field(default=8, ge=1)
    baseline: bool = True
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
