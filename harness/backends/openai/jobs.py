"""Talking to the fine-tuning API: clients, bounded retries, uploads, job payloads, results.

The SDK's own retries are switched off (``max_retries=0``) and done here with harness.retry
instead, because the SDK retries every 429 alike (an exhausted quota never recovers by waiting),
gives up on a ``Retry-After`` over two minutes, and its sleeps cannot be replaced in tests.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import openai

from harness.backends.protocol import TrialStopped
from harness.config import ConfigError
from harness.endpoints.client import make_client
from harness.endpoints.endpoint import OpenAIEndpoint
from harness.retry import Clock, Sleep, retrying
from harness.search_space import TrialParams
from harness.settings.openai import OpenAIConfig

T = TypeVar("T")
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
SUFFIX_MAX = 64
SECRET_ENV = ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY")
# Result-file columns and metric-event keys -> the metric names every backend logs.
METRIC_NAMES = {
    "train_loss": "train_loss",
    "train_accuracy": "train_accuracy",
    "train_mean_token_accuracy": "train_accuracy",
    "valid_loss": "eval_loss",
    "valid_mean_token_accuracy": "eval_accuracy",
    "full_valid_loss": "full_eval_loss",
    "full_valid_mean_token_accuracy": "full_eval_accuracy",
}


class CredentialsError(ConfigError):
    """A required environment variable is missing (its name is given, never a value)."""


def required_env(backend: str, api_version: str | None) -> list[str]:
    if backend == "azure_openai":
        names = ["AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT"]
        return names if api_version else [*names, "OPENAI_API_VERSION"]
    return ["OPENAI_API_KEY"]


def check_credentials(backend: str, api_version: str | None) -> None:
    missing = [name for name in required_env(backend, api_version) if not os.environ.get(name)]
    if missing:
        raise CredentialsError(f"backend {backend!r} needs environment variable(s) {missing}")


def jobs_client(backend: str, settings: OpenAIConfig, http_client: Any = None) -> openai.OpenAI:
    """An SDK client with keys read from the environment only; retries are ours (see above)."""
    # Every missing variable is named at once, as a config error, before the shared factory runs.
    check_credentials(backend, settings.api_version)
    endpoint = OpenAIEndpoint(
        kind=backend, api_version=settings.api_version, max_retries=0, timeout_s=settings.request_timeout_s
    )
    return make_client(endpoint, http_client=http_client)


def scrub_secrets(text: str) -> str:
    """``text`` with any API key from the environment masked (error messages reach MLflow)."""
    for name in SECRET_ENV:
        value = os.environ.get(name)
        if value and len(value) >= 8:
            text = text.replace(value, "***")
    return text


def quota_exhausted(error: openai.APIStatusError) -> bool:
    return "insufficient_quota" in (
        str(getattr(error, "code", "")),
        str(getattr(error, "type", "")),
    )


class Caller:
    """Runs one API call with bounded retries: 429 waits as told, 5xx and network back off.

    An exhausted quota (429 ``insufficient_quota``) never recovers by waiting: it stops the study,
    and the trial runs again (reattaching to its job, if it has one) when the study resumes.
    """

    def __init__(self, settings: OpenAIConfig, sleep: Sleep = time.sleep, clock: Clock = time.monotonic) -> None:
        self.settings = settings
        self.sleep = sleep
        self.clock = clock

    def __call__(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        policy = retrying(
            _retryable,
            max_attempts=self.settings.max_retries + 1,
            max_wait_s=self.settings.retry_max_wait_s,
            sleep=self.sleep,
            clock=self.clock,
        )
        try:
            return policy(fn, *args, **kwargs)
        except openai.RateLimitError as error:
            if quota_exhausted(error):
                raise TrialStopped(
                    "the API account has no quota left (insufficient_quota): add credit or "
                    "raise the limit, then resume the study",
                    stop_study=True,
                    code="insufficient_quota",
                    resumable=True,
                ) from error
            raise


def _retryable(error: BaseException) -> bool:
    if isinstance(error, openai.RateLimitError):
        return not quota_exhausted(error)
    return isinstance(error, openai.InternalServerError | openai.APIConnectionError)


class _StillProcessing(Exception):
    """The service is still importing a file (pending / running)."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


class FileStore:
    """Uploads each file once per endpoint; later trials and later processes reuse it.

    The file name carries the dataset digest, so ``files.list`` finds an earlier upload of the
    same bytes (on the same endpoint and account) without any local state to lose.
    """

    def __init__(
        self,
        client: openai.OpenAI,
        call: Caller,
        sleep: Sleep,
        poll_s: float,
        timeout_s: float | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.client, self.call, self.sleep, self.poll_s = client, call, sleep, poll_s
        self.timeout_s = call.settings.file_processing_timeout_s if timeout_s is None else timeout_s
        self.clock = clock or call.clock
        self._ids: dict[str, str] = {}
        self._lock = threading.Lock()  # parallel trials must not upload the same file twice

    def file_id(self, filename: str, content: bytes) -> str:
        with self._lock:
            if filename not in self._ids:
                found = self._find(filename)
                file_id = found or self._upload(filename, content)
                self._wait_processed(file_id)
                self._ids[filename] = file_id
            return self._ids[filename]

    def _find(self, filename: str) -> str | None:
        page = self.call(self.client.files.list, purpose="fine-tune")
        for item in page:  # later pages are fetched as the iteration needs them
            if item.filename == filename and item.status not in ("error", "deleted"):
                return item.id
        return None

    def _upload(self, filename: str, content: bytes) -> str:
        uploaded = self.call(
            self.client.files.create,
            file=(filename, content, "application/jsonl"),
            purpose="fine-tune",
        )
        return uploaded.id

    def _wait_processed(self, file_id: str) -> None:
        """Poll every ``poll_s`` until the file is processed, at most ``timeout_s`` seconds."""
        # Azure reports pending/running while it imports a file; jobs need it processed.
        policy = retrying(
            lambda error: isinstance(error, _StillProcessing),
            deadline_s=self.timeout_s,
            initial_wait_s=self.poll_s,
            backoff_cap_s=self.poll_s,
            max_wait_s=self.poll_s,
            sleep=self.sleep,
            clock=self.clock,
        )
        try:
            policy(self._check_processed, file_id)
        except _StillProcessing as still:
            raise TrialStopped(
                f"file {file_id} is still {still.status} after {self.timeout_s:g} s of waiting for "
                "the service to process it: resume the study later (the upload is reused) or raise "
                "openai.file_processing_timeout_s",
                code="file_processing_timeout",
            ) from None

    def _check_processed(self, file_id: str) -> None:
        item = self.call(self.client.files.retrieve, file_id)
        if item.status == "error":
            detail = getattr(item, "status_details", None) or "no details"
            raise TrialStopped(f"file {file_id} failed processing: {detail}", code="file_error")
        if item.status in ("pending", "running"):
            raise _StillProcessing(item.status)


def suffix_for(prefix: str, trial: int) -> str:
    """A model-name suffix naming study and trial, safe characters, at most 64 long."""
    tail = f"-t{trial}"
    clean = re.sub(r"[^A-Za-z0-9_-]+", "-", prefix).strip("-") or "harness"
    return clean[: SUFFIX_MAX - len(tail)] + tail


def resolve(params: TrialParams) -> dict[str, Any]:
    """Pure: the job's hyperparameters; the service applies the multiplier to its own base rate."""
    hyper: dict[str, Any] = {
        "n_epochs": params.epochs,
        "batch_size": params.batch_size,
        "learning_rate_multiplier": params.lr_multiplier,
    }
    if params.method == "dpo" and params.beta is not None:
        hyper["beta"] = params.beta
    return hyper


def job_seed(seed: int | None, repeat: int) -> int | None:
    """The job's seed: the configured one (None lets OpenAI pick), or for the k-th confirmation
    repeat of a configuration, that seed (0 when unset) + k: a repeat must train differently."""
    return seed if repeat == 0 else (seed or 0) + repeat


def job_payload(
    model: str,
    params: TrialParams,
    files: Mapping[str, str],
    suffix: str,
    seed: int | None = None,
) -> dict[str, Any]:
    """The jobs.create body: trial params under ``method.<type>.hyperparameters``."""
    hyper = resolve(params)
    payload: dict[str, Any] = {
        "model": model,
        "training_file": files["train"],
        "method": {"type": params.method, params.method: {"hyperparameters": hyper}},
        "suffix": suffix,
    }
    if files.get("validation"):
        payload["validation_file"] = files["validation"]
    if seed is not None:
        payload["seed"] = seed
    return payload


def _decode_result(content: bytes) -> str:
    text = content.decode("utf-8", errors="replace").strip()
    if text.startswith("step"):
        return text
    try:  # the service has served this file base64-encoded
        return base64.b64decode(text, validate=False).decode("utf-8").strip()
    except (binascii.Error, UnicodeDecodeError):
        return text


def parse_result_file(content: bytes) -> list[tuple[int, dict[str, float]]]:
    """The result CSV as (step, metrics) rows with our metric names; blank cells skipped."""
    rows = []
    for row in csv.DictReader(io.StringIO(_decode_result(content))):
        if not row.get("step"):
            continue
        metrics = {}
        for column, name in METRIC_NAMES.items():
            value = (row.get(column) or "").strip()
            if value:
                metrics[name] = float(value)
        rows.append((int(float(row["step"])), metrics))
    return rows


def event_metrics(data: Any) -> tuple[int, dict[str, float]] | None:
    """(step, metrics) from a ``metrics`` event's data, or None for other events."""
    if not isinstance(data, dict) or "step" not in data:
        return None
    metrics = {name: float(data[key]) for key, name in METRIC_NAMES.items() if isinstance(data.get(key), int | float)}
    return int(data["step"]), metrics


def make_answerer(client: openai.OpenAI, call: Caller, model: str, max_tokens: int) -> Callable[..., list[str]]:
    """Greedy answers (temperature 0) from the fine-tuned model or Azure deployment;
    ``max_new_tokens`` per call overrides ``max_tokens`` (evaluation sizes it from the references)."""

    def answer(prompts: list[list[dict[str, Any]]], max_new_tokens: int | None = None) -> list[str]:
        replies = []
        for messages in prompts:
            completion = call(
                client.chat.completions.create,
                model=model,
                messages=messages,
                temperature=0,
                max_tokens=max_new_tokens or max_tokens,
            )
            replies.append(completion.choices[0].message.content or "")
        return replies

    return answer
