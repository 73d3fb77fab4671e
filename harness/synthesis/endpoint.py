"""The chat-completions endpoint synthesis and rewrites talk to: clients, llama.cpp servers, bounded threads.

One code path for every endpoint (the OpenAI protocol through the openai SDK, whose own retries
cover transport errors, 429 and 5xx). The default starts the packaged SmolLM2 on harness-managed
llama.cpp servers, like the judge (harness.evaluation.judge_session).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, TypeVar

from harness.evaluation.judge import DEFAULT_AZURE_API_VERSION, LOCAL_API_KEY
from harness.evaluation.judge_session import judge_gguf
from harness.evaluation.server import llama_servers
from harness.settings.synthesis import EndpointConfig

T = TypeVar("T")
R = TypeVar("R")
Messages = list[dict[str, str]]


class EndpointError(RuntimeError):
    """An endpoint that cannot be used as configured (a missing key or URL)."""


def api_key(config: EndpointConfig) -> str:
    """Only the variable that belongs to this endpoint is read; local servers get a placeholder."""
    name = config.key_env
    if name is None:
        return LOCAL_API_KEY
    value = os.environ.get(name)
    if not value:
        raise EndpointError(f"the {config.kind} endpoint needs {name} set in the environment")
    return value


def make_client(config: EndpointConfig, base_url: str | None = None) -> Any:
    import openai

    url = base_url or config.base_url
    common: dict[str, Any] = {"max_retries": config.max_retries, "timeout": config.timeout_s}
    key = api_key(config)
    if config.kind == "azure_openai":
        endpoint = url or os.environ.get("AZURE_OPENAI_ENDPOINT")
        if not endpoint:
            raise EndpointError("azure_openai needs a base_url or AZURE_OPENAI_ENDPOINT")
        version = config.api_version or os.environ.get("OPENAI_API_VERSION") or DEFAULT_AZURE_API_VERSION
        return openai.AzureOpenAI(api_key=key, azure_endpoint=endpoint, api_version=version, **common)
    if config.kind != "openai" and not url:
        raise EndpointError(f"a {config.kind} endpoint needs a base_url")
    return openai.OpenAI(api_key=key, base_url=url, **common)


def start_clients(config: EndpointConfig, stack: contextlib.ExitStack) -> list[Any]:
    """Ready clients (one per llama.cpp server, else one); ``stack`` stops the servers."""
    urls: Sequence[str | None] = [None]
    if config.kind == "llama_cpp" and config.base_url is None:
        # llama-cpp-python's server decodes one request at a time: concurrency is more servers.
        count = config.servers or max(1, min(config.concurrency, os.cpu_count() or 1))
        urls = stack.enter_context(
            llama_servers(
                judge_gguf(config.model),
                count,
                n_ctx=config.n_ctx,
                startup_timeout_s=config.startup_timeout_s,
                n_threads=config.threads_per_server,
                logits_all=False,
            )
        )
    clients = [make_client(config, url) for url in urls]
    for client in clients:
        stack.callback(client.close)
    return clients


@contextlib.contextmanager
def open_clients(config: EndpointConfig) -> Iterator[Clients]:
    """Clients for ``config``, started on the first request (a run with nothing to ask starts no
    server); servers stop when the block ends, whatever the reason."""
    api_key(config)  # a missing key fails here, in the caller's thread, before anything starts
    with contextlib.ExitStack() as stack:
        yield Clients(config, lambda: start_clients(config, stack))


@dataclass(frozen=True)
class Reply:
    text: str  # stripped; '' when the model said nothing
    truncated: bool  # stopped by max_tokens, not by the model


def complete(client: Any, config: EndpointConfig, messages: Messages, seed: int) -> Reply:
    """One chat completion (the seed makes sampling repeatable where the server honours it)."""
    response = client.chat.completions.create(
        model=config.model,
        messages=messages,
        temperature=config.temperature,
        max_tokens=config.max_tokens,
        seed=seed,
    )
    choice = response.choices[0]
    return Reply((choice.message.content or "").strip(), choice.finish_reason == "length")


class Clients:
    """Clients shared out round-robin among worker threads (one per server where there are several)."""

    def __init__(self, config: EndpointConfig, start: Callable[[], Sequence[Any]]) -> None:
        self.config = config
        self._start = start
        self._clients: list[Any] | None = None
        self._next = 0
        self._lock = threading.Lock()

    def complete(self, messages: Messages, seed: int) -> Reply:
        with self._lock:
            if self._clients is None:
                self._clients = list(self._start())
            client = self._clients[self._next % len(self._clients)]
            self._next += 1
        return complete(client, self.config, messages, seed)


def run_bounded(
    items: Iterable[T], work: Callable[[T], R], workers: int, done: Callable[[T, R | BaseException], None]
) -> None:
    """``work`` on every item with at most ``workers`` in flight; ``done`` gets each result or error
    in this thread. Ctrl-C cancels what has not started and waits for what has."""
    pending: dict[Future[R], T] = {}
    source = iter(items)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        try:
            while True:
                while len(pending) < workers and (item := next(source, None)) is not None:
                    pending[pool.submit(work, item)] = item
                if not pending:
                    return
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    item = pending.pop(future)
                    error = future.exception()
                    done(item, error if error is not None else future.result())
        except BaseException:
            for future in pending:
                future.cancel()
            raise
