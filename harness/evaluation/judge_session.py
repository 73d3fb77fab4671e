"""Everything a judge needs for one evaluation: server(s), clients, rubric and cache."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from harness.evaluation.judge import Judge, make_client
from harness.evaluation.judge_cache import JudgeCache
from harness.evaluation.rubric import load_rubric
from harness.evaluation.server import llama_servers
from harness.settings.evaluation import JudgeConfig


def judge_gguf(model: str) -> Path:
    """A packaged model name ("smollm2") or a path to a GGUF file."""
    from harness.models import PACKAGED, packaged_gguf

    return packaged_gguf(model) if model in PACKAGED else Path(model).expanduser()


def server_count(config: JudgeConfig) -> int:
    # More single-threaded servers than cores would only contend for the same CPUs.
    return config.servers or max(1, min(config.concurrency, os.cpu_count() or 1))


@contextlib.contextmanager
def open_judge(config: JudgeConfig) -> Iterator[Judge]:
    """A ready Judge; llama.cpp servers (kind llama_cpp) are stopped when the block ends."""
    rubric = load_rubric(config.rubric)
    with contextlib.ExitStack() as stack:
        if config.kind == "llama_cpp" and config.base_url is None:
            urls = stack.enter_context(
                llama_servers(
                    judge_gguf(config.model),
                    server_count(config),
                    n_ctx=config.n_ctx,
                    startup_timeout_s=config.startup_timeout_s,
                    n_threads=config.threads_per_server,
                    logits_all=config.use_logprobs,
                )
            )
            clients = [make_client(config, url) for url in urls]
        else:
            clients = [make_client(config, None)]
        for client in clients:
            stack.callback(client.close)
        cache = None
        if config.cache_path is not None:
            cache = stack.enter_context(JudgeCache(config.cache_path))
        yield Judge(config, clients, rubric, cache)
