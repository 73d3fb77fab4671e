"""Asking an endpoint for text (synthesis and rewrites): lazily started clients, bounded threads.

One code path for every endpoint (the OpenAI protocol through the openai SDK, whose own retries
cover transport errors, 429 and 5xx). The default starts the packaged SmolLM2 on harness-managed
llama.cpp servers, as the judge does (``client.start_clients``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, TypeVar

from harness.endpoints.client import api_key, start_clients
from harness.endpoints.endpoint import OpenAIEndpoint
from harness.endpoints.llama_server import require_llama_cpp

T = TypeVar("T")
R = TypeVar("R")
Messages = list[dict[str, str]]


@contextlib.contextmanager
def open_clients(config: OpenAIEndpoint) -> Iterator[Clients]:
    """Clients for ``config``, started on the first request (a run with nothing to ask starts no
    server); servers stop when the block ends, whatever the reason."""
    api_key(config)  # a missing key fails here, in the caller's thread, before anything starts
    require_llama_cpp(config)  # and so does a missing llama.cpp
    with contextlib.ExitStack() as stack:
        yield Clients(config, lambda: start_clients(config, stack))


@dataclass(frozen=True)
class Reply:
    text: str  # stripped; '' when the model said nothing
    truncated: bool  # stopped by max_tokens, not by the model


def complete(client: Any, config: OpenAIEndpoint, messages: Messages, seed: int) -> Reply:
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

    def __init__(self, config: OpenAIEndpoint, start: Callable[[], Sequence[Any]]) -> None:
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
