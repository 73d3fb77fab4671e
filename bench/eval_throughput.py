"""Evaluation throughput: greedy generation variants, embedding pairs/s, judge answers/s, warm cache.

Generation: the packaged SmolLM2 answers the evaluation's prompts (held-out and train splits, one
``generate`` call per split with the split's token budget, as ``harness.evaluation.evaluator`` does) under
each variant, timed in one process, side by side: transformers' ``generate`` (the previous engine)
unbatched, batched, in bf16 autocast; the harness's greedy loop (``harness.generation``) in fp32/bf16 at
the configured batch size and with a whole split per batch. It prints seconds, tokens/s, how many answers
match the fp32 reference, and ratios (``generate_speedup_vs_fp32_unbatched=...``). The unbatched variant
runs on a few prompts and is scaled: alone in its batch, each prompt costs the same whatever the others.

Judge: the real llama.cpp judge (packaged SmolLM2 GGUF) on ~12 held-out Q/A pairs. The last line reads
``judge_speedup=X warm_calls=N``. Usage: ``python bench/eval_throughput.py [--pairs 12] [--no-judge]
[--no-generation] [--per-split 18] [--variants greedy_bf16_split,hf_fp32_b8]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.endpoints.client import start_clients
from harness.endpoints.llama_server import server_count
from harness.evaluation.embedding import load_embedder
from harness.evaluation.judge import Judge, JudgeItem
from harness.evaluation.judge_cache import JudgeCache
from harness.evaluation.rubric import load_rubric
from harness.settings.evaluation import JudgeConfig

ROOT = Path(__file__).resolve().parents[1]
HELDOUT = ROOT / "experiments" / "data" / "programmer_heldout.jsonl"
TRAIN = ROOT / "experiments" / "data" / "programmer_train.jsonl"
Messages = list[dict[str, Any]]


@dataclass(frozen=True)
class Variant:
    name: str
    engine: str  # harness.generation.generate's engine: "hf" (transformers' generate) or "greedy"
    bf16: bool
    batch_size: int | None  # None: a whole split per batch
    sampled: bool = False  # timed on a few prompts and scaled (only sensible for batch size 1)


VARIANTS = (  # the two references first: every later row is compared with them as it prints
    Variant("hf_fp32_b8", "hf", False, 8),
    Variant("hf_bf16autocast_b8", "hf", True, 8),
    Variant("hf_fp32_unbatched", "hf", False, 1, sampled=True),
    Variant("greedy_fp32_b8", "greedy", False, 8),
    Variant("greedy_fp32_split", "greedy", False, None),
    Variant("greedy_bf16_b8", "greedy", True, 8),
    Variant("greedy_bf16_split", "greedy", True, None),
)
REFERENCE = "hf_fp32_b8"  # the answers every variant is compared with
BF16_REF = "hf_bf16autocast_b8"  # and, for bf16, the previous engine's bf16 answers


def shared_prefix(a: str, b: str) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def agree(answers: dict[str, list[str | None]], reference: dict[str, list[str | None]]) -> str:
    """How many answers equal the reference's, and the mean share of the reference they start with."""
    pairs = [
        (a, r)
        for split in answers
        for a, r in zip(answers[split], reference[split], strict=True)
        if a is not None and r is not None
    ]
    if not pairs:
        return "-"
    same = sum(a == r for a, r in pairs)
    prefix = sum(shared_prefix(a, r) / max(1, len(r)) for a, r in pairs) / len(pairs)
    return f"{same}/{len(pairs)} ({prefix:.0%})"


def generation_splits(per_split: int) -> dict[str, tuple[list[Messages], list[str]]]:
    """The evaluation's two splits: the first ``per_split`` held-out and train prompts, with references."""
    splits = {}
    for name, path in (("heldout", HELDOUT), ("train", TRAIN)):
        records = [json.loads(line)["messages"] for line in path.read_text().splitlines()[:per_split]]
        splits[name] = ([r[:-1] for r in records], [r[-1]["content"] for r in records])
    return splits


def budget(tokenizer: Any, references: list[str], margin: float = 0.5) -> int:
    """As harness.evaluation.evaluator.token_budget: the longest reference x (1 + margin) + 16."""
    longest = max(len(tokenizer(r, add_special_tokens=False).input_ids) for r in references)
    return math.ceil(longest * (1 + margin)) + 16


def run_variant(
    variant: Variant, model: Any, tokenizer: Any, splits: dict[str, tuple[list[Messages], list[str]]], sample: int
) -> tuple[float, dict[str, list[str | None]], int]:
    """Seconds for every split (scaled for sampled variants), answers (None where not run), tokens."""
    from harness.generation import generate

    seconds, tokens, answers = 0.0, 0, {}
    for split, (prompts, references) in splits.items():
        picked = list(range(0, len(prompts), max(1, len(prompts) // sample))) if variant.sampled else None
        chosen = [prompts[i] for i in picked] if picked is not None else prompts
        started = time.perf_counter()
        out = generate(
            model,
            tokenizer,
            chosen,
            max_new_tokens=budget(tokenizer, references),
            batch_size=variant.batch_size or len(chosen),
            bf16=variant.bf16,
            engine=variant.engine,  # type: ignore[arg-type]
        )
        elapsed = time.perf_counter() - started
        scale = len(prompts) / len(chosen)
        seconds += elapsed * scale
        tokens += round(sum(len(tokenizer(a, add_special_tokens=False).input_ids) for a in out) * scale)
        if picked is None:
            answers[split] = list(out)
        else:
            answers[split] = [None] * len(prompts)
            for i, a in zip(picked, out, strict=True):
                answers[split][i] = a
    return seconds, answers, tokens


def generation_rates(per_split: int, names: list[str] | None, sample: int, answers_dir: Path | None = None) -> None:
    """Time each variant on the evaluation's workload and print the table and the speedup ratios."""
    import torch

    from harness.models import load_base, load_tokenizer

    tokenizer, model = load_tokenizer("smollm2"), load_base("smollm2")
    splits = generation_splits(per_split)
    n = sum(len(p) for p, _ in splits.values())
    budgets = {split: budget(tokenizer, refs) for split, (_, refs) in splits.items()}
    threads = torch.get_num_threads()
    print(f"generation: smollm2, {n} prompts ({per_split} per split), budgets {budgets}, {threads} threads")
    # Warm-up: kernels, the attention registration and the allocator's first pages are one-off costs.
    from harness.generation import generate

    for engine in ("hf", "greedy"):
        generate(model, tokenizer, splits["heldout"][0][:2], max_new_tokens=4, engine=engine)  # type: ignore[arg-type]
    chosen = [v for v in VARIANTS if names is None or v.name in names]
    print(
        f"{'variant':22s} {'seconds':>8s} {'tokens':>7s} {'tok/s':>7s}  same answers (shared prefix) as "
        f"{REFERENCE} | as {BF16_REF}",
        flush=True,
    )
    results: dict[str, tuple[float, dict[str, list[str | None]], int]] = {}
    saved = {}  # answers an earlier run left in answers_dir: the slow references need not run again
    for ref in (REFERENCE, BF16_REF):
        if answers_dir is not None and (answers_dir / f"{ref}.json").exists():
            saved[ref] = json.loads((answers_dir / f"{ref}.json").read_text())
    for variant in chosen:
        seconds, answers, tokens = run_variant(variant, model, tokenizer, splits, sample)
        results[variant.name] = (seconds, answers, tokens)
        if answers_dir is not None:
            answers_dir.mkdir(parents=True, exist_ok=True)
            (answers_dir / f"{variant.name}.json").write_text(json.dumps(answers))
        references = {**saved, **{name: result[1] for name, result in results.items()}}
        agreement = [agree(answers, references[ref]) if ref in references else "-" for ref in (REFERENCE, BF16_REF)]
        note = " (scaled from a sample)" if variant.sampled else ""
        print(
            f"{variant.name:22s} {seconds:8.1f} {tokens:7d} {tokens / seconds:7.1f}  {' | '.join(agreement)}{note}",
            flush=True,
        )
    seconds = {name: r[0] for name, r in results.items()}
    best = min(seconds, key=seconds.__getitem__)
    ratios = []
    if "hf_fp32_unbatched" in seconds:
        ratios.append(f"generate_speedup_vs_fp32_unbatched={seconds['hf_fp32_unbatched'] / seconds[best]:.2f}")
    if REFERENCE in seconds:
        ratios.append(f"generate_speedup_vs_hf_fp32_b8={seconds[REFERENCE] / seconds[best]:.2f}")
    for precision in ("fp32", "bf16"):
        old = "hf_fp32_b8" if precision == "fp32" else "hf_bf16autocast_b8"
        new = f"greedy_{precision}_split"
        if old in seconds and new in seconds:
            ratios.append(f"greedy_{precision}_speedup_vs_hf={seconds[old] / seconds[new]:.2f}")
    print(f"{' '.join(ratios)} best={best} best_seconds={seconds[best]:.1f}")


def load_items(n: int) -> list[JudgeItem]:
    """Questions with their training answers; each answer is its neighbour's reference."""
    pairs = []
    for line in HELDOUT.read_text().splitlines()[:n]:
        messages = json.loads(line)["messages"]
        pairs.append((messages[1]["content"], messages[2]["content"]))
    # Half the answers are the reference itself, half a different answer: non-trivial scores.
    return [
        JudgeItem(q, ref, ref if i % 2 == 0 else pairs[(i + 1) % len(pairs)][1]) for i, (q, ref) in enumerate(pairs)
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
    parser.add_argument("--no-generation", action="store_true", help="skip the generation variants")
    parser.add_argument("--no-judge", action="store_true", help="skip the embedding and judge benchmarks")
    parser.add_argument("--per-split", type=int, default=18, help="prompts per split (18: all held-out)")
    parser.add_argument("--variants", help="comma-separated variant names (default: all)")
    parser.add_argument("--unbatched-sample", type=int, default=3, help="prompts per split for unbatched")
    parser.add_argument("--answers-dir", type=Path, help="save each variant's answers; reuse saved references")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not args.no_generation:
        names = args.variants.split(",") if args.variants else None
        generation_rates(args.per_split, names, args.unbatched_sample, args.answers_dir)
    if args.no_judge:
        return
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
        contextlib.ExitStack() as stack,
        tempfile.TemporaryDirectory() as tmp,
        JudgeCache(Path(tmp) / "cache.sqlite") as cache,
    ):
        # The servers and clients a study's judge gets (harness.evaluation.judge_session).
        clients = start_clients(config, stack, logits_all=config.use_logprobs)
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
        print(f"warm-cache rerun: {warm.calls} calls, {warm.cache_hits} cache hits, {warm.missing} missing")
    print(f"judge_speedup={rate_n / rate_1:.2f} warm_calls={warm.calls}")


if __name__ == "__main__":
    main()
