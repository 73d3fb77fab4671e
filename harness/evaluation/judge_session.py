"""Everything a judge needs for one evaluation: server(s), clients, rubric and cache."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from harness.endpoints.client import start_clients
from harness.evaluation.judge import Judge
from harness.evaluation.judge_cache import JudgeCache
from harness.evaluation.rubric import load_rubric
from harness.settings.evaluation import JudgeConfig


@contextlib.contextmanager
def open_judge(config: JudgeConfig) -> Iterator[Judge]:
    """A ready Judge; llama.cpp servers (kind llama_cpp) are stopped when the block ends."""
    rubric = load_rubric(config.rubric)
    with contextlib.ExitStack() as stack:
        # Logprobs need every position's logits, which a server keeps only when told to.
        clients = start_clients(config, stack, logits_all=config.use_logprobs)
        cache = None
        if config.cache_path is not None:
            cache = stack.enter_context(JudgeCache(config.cache_path))
        yield Judge(config, clients, rubric, cache)
