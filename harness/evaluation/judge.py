"""An LLM judge over the OpenAI chat-completions protocol (OpenAI, Azure OpenAI, any base_url).

Each answer gets one call that returns JSON scores for every rubric criterion plus an overall
score, weighted by top_logprobs where the endpoint returns them (see ``judge_parse``). Transport
errors use the openai SDK's own ``max_retries``/``timeout`` (clients come from
``harness.endpoints.client``); unparsable replies and refusals get
``max_retries`` more attempts of ours; whatever still fails is recorded as missing (None).
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.evaluation.judge_cache import JudgeCache, cache_key
from harness.evaluation.judge_parse import (
    ParseError,
    clean_reasons,
    first_choice,
    message_text,
    parse_reply,
    tokens_from_choice,
    weighted_scores,
)
from harness.evaluation.rubric import Rubric
from harness.settings.evaluation import JudgeConfig

# Retries of a deterministic (temperature 0) judge would repeat the same reply.
RETRY_TEMPERATURE = 0.7


@dataclass(frozen=True)
class JudgeItem:
    question: str
    reference: str
    answer: str


@dataclass
class JudgeScore:
    """Scores on 0-100; None where the judge gave no usable answer (never 0)."""

    criteria: dict[str, float | None]
    overall: float | None
    reasons: str = ""
    error: str | None = None

    @property
    def missing(self) -> bool:
        return self.overall is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JudgeScore:
        return cls(**data)


@dataclass
class _Counters:
    calls: int = 0
    cache_hits: int = 0
    missing: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, n: int = 1) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + n)


class Judge:
    """Scores answers against references with a rubric; counts calls, cache hits, missing."""

    def __init__(
        self,
        config: JudgeConfig,
        client: Any | Sequence[Any],
        rubric: Rubric,
        cache: JudgeCache | None = None,
    ) -> None:
        self.config = config
        # Several clients (one per llama.cpp server) are shared out among the worker threads.
        self.clients = list(client) if isinstance(client, list | tuple) else [client]
        self.rubric = rubric
        self.cache = cache
        self.counters = _Counters()
        self.response_format = _response_format(config, rubric)
        self.use_logprobs = config.use_logprobs
        self._local = threading.local()
        self._next_client = itertools.count()

    calls = property(lambda self: self.counters.calls)
    cache_hits = property(lambda self: self.counters.cache_hits)
    missing = property(lambda self: self.counters.missing)

    @property
    def identity(self) -> str:
        """What, besides the rubric and the texts, decides a score: part of the cache key."""
        return f"{self.config.kind}:{self.config.model}:logprobs={self.config.use_logprobs}"

    def params(self) -> dict[str, str]:
        """Loggable settings; never keys or endpoints."""
        return {
            "judge_model": self.config.model,
            "judge_endpoint": self.config.kind,
            "judge_rubric": self.rubric.name,
            "judge_rubric_hash": self.rubric.hash,
            "judge_logprobs": str(self.config.use_logprobs).lower(),
            "judge_concurrency": str(self.config.concurrency),
        }

    def score_many(self, items: Sequence[JudgeItem]) -> list[JudgeScore]:
        """Scores in the order of ``items``; duplicates and cached items cost no calls."""
        keys = [self._key(item) for item in items]
        results: dict[str, JudgeScore] = {}
        pending: dict[str, JudgeItem] = {}
        for key, item in zip(keys, items, strict=True):
            if key in results or key in pending:
                continue
            cached = self.cache.get(key) if self.cache is not None else None
            if cached is not None:
                self.counters.add("cache_hits")
                results[key] = JudgeScore.from_dict(cached)
            else:
                pending[key] = item
        results.update(self._score_pending(pending))
        return [results[key] for key in keys]

    def score(self, item: JudgeItem) -> JudgeScore:
        return self.score_many([item])[0]

    def _key(self, item: JudgeItem) -> str:
        return cache_key(self.identity, self.rubric.hash, item.question, item.reference, item.answer)

    def _score_pending(self, pending: dict[str, JudgeItem]) -> dict[str, JudgeScore]:
        if not pending:
            return {}
        workers = min(self.config.concurrency, len(pending))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="judge")
        try:
            futures = {key: pool.submit(self._score_one, key, item) for key, item in pending.items()}
            results = {key: future.result() for key, future in futures.items()}
        except BaseException:
            # Ctrl-C: drop queued work instead of waiting for every remaining call.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        return results

    def _score_one(self, key: str, item: JudgeItem) -> JudgeScore:
        score = self._judge(item, self._client())
        if score.missing:
            self.counters.add("missing")
        elif self.cache is not None:
            # Only real scores are cached: a rerun retries what was missing.
            self.cache.put(key, score.to_dict(), judge=self.identity, rubric_hash=self.rubric.hash)
        return score

    def _client(self) -> Any:
        if not hasattr(self._local, "client"):
            self._local.client = self.clients[next(self._next_client) % len(self.clients)]
        return self._local.client

    def _judge(self, item: JudgeItem, client: Any) -> JudgeScore:
        """Up to 1 + max_retries attempts for replies without usable scores.

        Whatever a reply holds, the result is a score or a missing one: an exception here would
        fail the whole trial for one answer the judge could not read.
        """
        import openai
        import pydantic

        messages = self.rubric.messages(item.question, item.reference, item.answer)
        error = "unparsable"
        for attempt in range(self.config.max_retries + 1):
            try:
                choice = self._complete(client, messages, retry=attempt > 0)
                return self._read(choice)
            except ParseError as failure:
                error = failure.kind
            except (openai.APIResponseValidationError, pydantic.ValidationError, json.JSONDecodeError):
                error = "malformed"  # a reply the SDK (or a validating layer) could not read
            except openai.APITimeoutError:
                return self._missing("timeout")  # the SDK already retried
            except openai.APIConnectionError:
                return self._missing("connection")
            except openai.APIStatusError as failure:
                return self._missing(f"http {failure.status_code}")
        return self._missing(error)

    def _complete(self, client: Any, messages: list[dict[str, str]], *, retry: bool) -> Any:
        """One chat completion; drops options the endpoint rejects (400) and asks again."""
        import openai

        while True:
            request = self._request(messages, retry=retry)
            self.counters.add("calls")
            try:
                return first_choice(client.chat.completions.create(**request))
            except openai.BadRequestError as failure:
                if not self._downgrade(str(failure.message).lower()):
                    raise

    def _request(self, messages: list[dict[str, str]], *, retry: bool) -> dict[str, Any]:
        temperature = self.config.temperature
        request: dict[str, Any] = {
            "model": self.config.model,
            "messages": messages,
            "max_tokens": self.config.max_tokens,
            "temperature": max(temperature, RETRY_TEMPERATURE) if retry else temperature,
        }
        if self.response_format is not None:
            request["response_format"] = self.response_format
        if self.use_logprobs:
            request.update(logprobs=True, top_logprobs=self.config.top_logprobs)
        return request

    def _downgrade(self, message: str) -> bool:
        """Drop the option a 400 names (structured output or logprobs); False if neither."""
        if self.response_format is not None and ("response_format" in message or "json" in message):
            self.response_format = None
        elif self.use_logprobs and "logprob" in message:
            self.use_logprobs = False
        else:
            return False
        return True

    def _read(self, choice: Any) -> JudgeScore:
        text = message_text(choice)
        rubric = self.rubric
        keys = rubric.keys
        scores, reasons = parse_reply(text, keys, rubric.scale_min, rubric.scale_max)
        values: dict[str, float] = {k: float(v) for k, v in scores.items()}
        tokens = tokens_from_choice(choice) if self.use_logprobs else []
        values.update(weighted_scores(tokens, (*keys, "overall"), rubric.scale_min, rubric.scale_max))
        criteria: dict[str, float | None] = {k: rubric.to_percent(values[k]) for k in keys}
        if "overall" in values:
            overall = rubric.to_percent(values["overall"])
        else:
            overall = sum(v for v in criteria.values() if v is not None) / len(keys)
        return JudgeScore(criteria=criteria, overall=overall, reasons=clean_reasons(reasons))

    def _missing(self, error: str) -> JudgeScore:
        return JudgeScore({k: None for k in self.rubric.keys}, None, "", error)


def _response_format(config: JudgeConfig, rubric: Rubric) -> dict[str, Any] | None:
    mode = config.structured_output
    if mode == "auto":
        mode = {"openai": "json_schema", "azure_openai": "json_schema"}.get(config.kind, "json_object")
    if mode == "none":
        return None
    schema = score_schema(rubric)
    if mode == "json_schema":
        return {
            "type": "json_schema",
            "json_schema": {"name": "scores", "schema": schema, "strict": True},
        }
    if config.kind == "llama_cpp":
        # llama-cpp-python turns a schema next to json_object into a sampling grammar; the
        # length cap keeps a rambling small judge from spending max_tokens on its reasons.
        properties = {**schema["properties"], "reasons": {"type": "string", "maxLength": 120}}
        return {"type": "json_object", "schema": {**schema, "properties": properties}}
    return {"type": "json_object"}


def score_schema(rubric: Rubric) -> dict[str, Any]:
    """JSON schema of a reply: one single-digit integer per criterion, overall, reasons."""
    digits = list(range(rubric.scale_min, rubric.scale_max + 1))
    keys = (*rubric.keys, "overall")
    properties: dict[str, Any] = {k: {"type": "integer", "enum": digits} for k in keys}
    properties["reasons"] = {"type": "string"}
    return {
        "type": "object",
        "properties": properties,
        "required": [*keys, "reasons"],
        "additionalProperties": False,
    }
