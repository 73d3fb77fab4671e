"""The ``openai`` section of a study config: no credentials here, they come from the environment.

Keys are read from ``OPENAI_API_KEY`` (backend ``openai``) or ``AZURE_OPENAI_API_KEY`` and
``AZURE_OPENAI_ENDPOINT`` (backend ``azure_openai``); nothing in this section is secret, so the
whole section may be logged as params.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.settings.frozen import Frozen

# USD per 1M trained tokens (OpenAI's public price list, 2025; check before relying on it).
DEFAULT_TRAINING_PRICES: dict[str, float] = {
    "gpt-4o-mini-2024-07-18": 3.0,
    "gpt-4o-2024-08-06": 25.0,
    "gpt-4.1-2025-04-14": 25.0,
    "gpt-4.1-mini-2025-04-14": 5.0,
    "gpt-4.1-nano-2025-04-14": 1.5,
    "gpt-3.5-turbo-0125": 8.0,
}
# Tokens of one training example the service trains on; longer examples are truncated to this.
DEFAULT_EXAMPLE_CONTEXT: dict[str, int] = {
    "gpt-4o-mini-2024-07-18": 65536,
    "gpt-4o-2024-08-06": 65536,
    "gpt-4.1-2025-04-14": 65536,
    "gpt-4.1-mini-2025-04-14": 65536,
    "gpt-4.1-nano-2025-04-14": 65536,
    "gpt-3.5-turbo-0125": 16385,
}


def by_deployment(service: str) -> bool:
    """Azure OpenAI answers a fine-tune only through a deployment of it, named where the model goes."""
    return service == "azure_openai"


class OpenAIConfig(Frozen):
    """Remote fine-tuning jobs: pricing and budget, polling, retries, naming, Azure inference."""

    # Azure OpenAI only (else OPENAI_API_VERSION); AZURE_OPENAI_ENDPOINT gives the endpoint.
    api_version: str | None = None
    max_concurrent_jobs: int = Field(default=2, ge=1)
    # Polling: start at poll_interval_s, grow by poll_backoff while nothing changes.
    poll_interval_s: float = Field(default=30.0, gt=0)
    poll_backoff: float = Field(default=1.5, ge=1.0)
    poll_max_interval_s: float = Field(default=300.0, gt=0)
    # How long polling may fail (past each request's retries) while the job trains on: the trial
    # waits that long, then stops as interrupted, and the next sweep or worker reattaches to the job.
    poll_outage_max_s: float = Field(default=6 * 3600.0, gt=0)
    # Bounded retries of one request (429 without quota problems, 5xx, timeouts).
    max_retries: int = Field(default=5, ge=0)
    retry_max_wait_s: float = Field(default=600.0, gt=0)
    request_timeout_s: float = Field(default=120.0, gt=0)
    # How long an uploaded file may stay pending/running (Azure imports it) before the trial stops.
    file_processing_timeout_s: float = Field(default=1800.0, gt=0)
    budget_usd: float | None = Field(default=None, gt=0)
    # USD per 1M trained tokens, by base model; merged over DEFAULT_TRAINING_PRICES.
    training_price_per_mtok: dict[str, float] = Field(default_factory=dict)
    # Per-example token cap by base model; merged over DEFAULT_EXAMPLE_CONTEXT.
    max_example_tokens: dict[str, int] = Field(default_factory=dict)
    # How preflight counts tokens: tiktoken needs its encodings cached (no download here).
    token_counter: Literal["auto", "tiktoken", "smollm2", "chars"] = "auto"
    seed: int | None = None  # the job's seed, for reproducible remote runs
    suffix: str | None = None  # fine-tuned model suffix prefix; default: the study name
    # Azure: chat completions need a deployment of the fine-tuned model (made outside harness).
    # "{trial}" and "{job_id}" are filled in, e.g. "ft-{trial}". Unset: no answers on Azure.
    azure_deployment: str | None = None
    min_train_examples: int = Field(default=10, ge=1)  # the service rejects fewer

    def training_price(self, model: str) -> float | None:
        return {**DEFAULT_TRAINING_PRICES, **self.training_price_per_mtok}.get(model)

    def example_cap(self, model: str) -> int:
        return {**DEFAULT_EXAMPLE_CONTEXT, **self.max_example_tokens}.get(model, 65536)

    def deployment(self, service: str, trial: int, job_id: str, study: str) -> str | None:
        """The Azure deployment serving a trial's fine-tune (``azure_deployment`` filled in); None
        where the model answers by its own id, or no deployment is named."""
        if not by_deployment(service) or not self.azure_deployment:
            return None
        return self.azure_deployment.format(trial=trial, job_id=job_id, study=study)
