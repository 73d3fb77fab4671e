"""Evaluation throughput: embedding pairs/s, judge answers/s at concurrency 1 and N, warm cache.

Runs the real llama.cpp judge (packaged SmolLM2 GGUF) on ~12 held-out Q/A pairs. The last line
reads ``judge_speedup=X warm_calls=N``. Usage: ``python bench/eval_throughput.py [--pairs 12]``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from harness.evaluation.embedding import load_embedder
from harness.evaluation.judge import Judge, JudgeItem, make_client
from harness.evaluation.judge_cache import JudgeCache
from harness.evaluation.judge_session import judge_gguf, server_count
from harness.evaluation.rubric import load_rubric
from harness.evaluation.server import llama_servers
from harness.settings.evaluation import JudgeConfig

ROOT = Path(__file__).resolve().parents[1]
HELDOUT = ROOT / "experiments" / "data" / "programmer_heldout.jsonl"


def load_items(n: int) -> list[JudgeItem]:
    """Questions with their training answers; each answer is its neighbour's reference."""
    pairs = []
    for line in HELDOUT.read_text().splitlines()[:n]:
        messages = json.loads(line)["messages"]
        pairs.append((messages[1]["content"], messages[2]["content"]))
    # Half the answers are the reference itself, half a different answer: non-trivial scores.
    return [
        JudgeItem(q, ref, ref if i % 2 == 0 else pairs[(i + 1) % len(pairs)][1])
        for i, (q, ref) in enumerate(pairs)
    ]


def embedding_rate(items: list[JudgeItem], repeats: int = 8) -> float:
    embedder = load_embedder()
    embedder.similarities(["warm up"], ["warm up"])
    answers = [item.answer for item in items] * repeats
    references = [item.reference for item in items] * repeats
    started = time.perf_counter()
    embedder.similarities(answers, references)
    return len(answers) / (time.perf_counter() - started)


def timed(judge: Judge, items: list[JudgeItem]) -> tuple[float, int]:
    started = time.perf_counter()
    scores = judge.score_many(items)
    elapsed = time.perf_counter() - started
    return len(items) / elapsed, sum(s.overall is None for s in scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--concurrency", type=int, default=JudgeConfig().concurrency)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    items = load_items(args.pairs)
    print(f"embedding: {embedding_rate(items):.1f} pairs/s")

    config = JudgeConfig(concurrency=args.concurrency, cache_path=None)
    serial = config.model_copy(update={"concurrency": 1})
    rubric = load_rubric(config.rubric)
    count = server_count(config)
    print(
        f"judge: {count} llama.cpp server(s) x {config.threads_per_server} thread(s), "
        f"{len(items)} answers, rubric {rubric.hash}"
    )
    with (
        llama_servers(
            judge_gguf(config.model), count, n_ctx=config.n_ctx, n_threads=config.threads_per_server
        ) as urls,
        tempfile.TemporaryDirectory() as tmp,
        JudgeCache(Path(tmp) / "cache.sqlite") as cache,
    ):
        clients = [make_client(config, url) for url in urls]
        # Warm-up: the first request to each server pays one-off setup costs.
        Judge(config, clients, rubric).score_many(items[: len(clients)])
        rate_1, missing_1 = timed(Judge(serial, clients, rubric), items)
        print(f"judge concurrency 1: {rate_1:.2f} answers/s ({missing_1} missing)")
        parallel = Judge(config, clients, rubric, cache)
        rate_n, missing_n = timed(parallel, items)
        print(
            f"judge concurrency {config.concurrency}: {rate_n:.2f} answers/s "
            f"({missing_n} missing, {parallel.calls} calls)"
        )
        warm = Judge(config, clients, rubric, cache)
        warm.score_many(items)
        print(
            f"warm-cache rerun: {warm.calls} calls, {warm.cache_hits} cache hits, "
            f"{warm.missing} missing"
        )
    print(f"judge_speedup={rate_n / rate_1:.2f} warm_calls={warm.calls}")


if __name__ == "__main__":
    main()
