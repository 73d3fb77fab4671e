"""Evaluate a trained model inside a study: answers, scores, tables and judge counters on its run."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import math
import random
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.answering import Answerer, Sampling, TokenCounter
from harness.config import ConfigError
from harness.data.chat import Example, digest
from harness.evaluation.checked import check_split, checked_vs_baseline, checks_digest, one_sided_groups, split_checks
from harness.evaluation.scoring import score_split
from harness.evaluation.stability import Similarity, composite_similarity
from harness.evaluation.task import Checked
from harness.metrics import (
    CONSISTENCY,
    EVAL_GENERATION_SECONDS,
    EVAL_MIRROR_SECONDS,
    EVAL_SECONDS,
    HELDOUT,
    TRAIN,
    MetricName,
)
from harness.settings.evaluation import EvaluationConfig
from harness.tracking import TAG_EVAL_DIGEST, TAG_MIRROR_INCOMPLETE, Tracker

log = logging.getLogger(__name__)
# Part of the eval digest: a change to how scorers score makes old numbers incomparable.
SCORERS_VERSION = 2
# Paired comparisons with the baseline are made for these columns (and the judge's overall).
COMPARED = ("embedding", "rouge_l", "structure", "detail", "consistency", "judge")
# Evaluation settings that change the answers generated (token budgets; batching pads prompts).
ANSWERING_FIELDS = ("max_new_tokens", "length_margin", "batch_size")
# Judge settings that can change a verdict. The others (concurrency, retries, timeouts, the cache,
# server processes, the judge check and what it lets into the objective) decide how or whether a
# score is obtained, not what it is; the rubric counts by content (its hash).
JUDGE_SCORING_FIELDS = (
    "kind",
    "model",
    "base_url",
    "api_version",
    "use_logprobs",
    "top_logprobs",
    "structured_output",
    "max_tokens",
    "temperature",
    "n_ctx",
)


def sample(examples: Sequence[Example], size: int | None, seed: int) -> list[Example]:
    """Pure: a fixed-seed sample (all of them when size is None or larger than the set)."""
    if size is None or size >= len(examples):
        return list(examples)
    return random.Random(seed).sample(list(examples), size)


def question_of(example: Example) -> str:
    return next(m["content"] for m in reversed(example.prompt) if m["role"] == "user")


def example_id(example: Example) -> str:
    """``file.jsonl:line``: stable across machines and checkouts, unlike the full path."""
    path, _, line = example.source.rpartition(":")
    return f"{Path(path).name}:{line}" if path else example.source


def estimate_tokens(texts: list[str]) -> list[int]:
    """Without the model's tokenizer: about 3 characters a token for prose mixed with code."""
    return [math.ceil(len(t) / 3) for t in texts]


def token_budget(references: Sequence[str], settings: EvaluationConfig, count: TokenCounter) -> int:
    """Pure: new tokens a split may generate: its longest reference with a margin, capped."""
    longest = max(count(list(references)), default=0)
    return max(1, min(settings.max_new_tokens, math.ceil(longest * (1 + settings.length_margin)) + 16))


def vs_baseline(
    split: str, rows: list[dict[str, Any]], baseline: list[dict[str, Any]], settings: EvaluationConfig
) -> dict[str, float]:
    """Paired differences (trial - baseline) and their bootstrap interval, per scorer."""
    from harness.evaluation.seeds import compare_seeded_rows

    metrics: dict[str, float] = {}
    for column in COMPARED:
        # One run each: the paired bootstrap, resampling whole question groups when rows carry them.
        diff = compare_seeded_rows(
            [rows], [baseline], column, level=settings.confidence_level, resamples=settings.bootstrap_resamples
        )
        if diff is not None:
            metrics |= diff.as_metrics(MetricName(CONSISTENCY, split, column).vs_baseline().key)
    return metrics


def evaluation_digest(
    settings: EvaluationConfig, splits: Mapping[str, Sequence[Example]], rubric_hash: str | None
) -> str:
    """Pure: identity of an evaluation, from what changes its answers or scores and nothing else.

    The examples are digested by content, so the sampling settings count only through what they
    pick; the judge counts only when it scores, and then only by what can change its verdict.
    """
    ran = settings.composite_scorers
    total = sum(settings.consistency_weights[s] for s in ran)
    identity: dict[str, Any] = {
        "scorers": sorted(settings.scorers),
        # The composite renormalises its weights over the scorers that ran: only their ratios count.
        "weights": {s: round(settings.consistency_weights[s] / total, 12) for s in ran},
        "answering": settings.model_dump(mode="json", include=set(ANSWERING_FIELDS)),
        "splits": {split: digest(examples) for split, examples in sorted(splits.items())},
    }
    if "judge" in settings.scorers:
        judge = settings.judge.model_dump(mode="json", include=set(JUDGE_SCORING_FIELDS))
        identity["judge"] = judge | {"rubric_hash": rubric_hash}
    # Checks and sampled answers count only where there are any: older evaluations keep their digest.
    checks = {s: checks_digest(split_checks(settings, s, e, [example_id(x) for x in e])) for s, e in splits.items()}
    if any(checks.values()):
        identity["checks"] = dict(sorted(checks.items()))
    if settings.stability is not None:
        identity["stability"] = settings.stability.model_dump(mode="json")
    h = hashlib.sha256(f"scorers-v{SCORERS_VERSION}".encode())
    h.update(json.dumps(identity, sort_keys=True).encode())
    return h.hexdigest()[:16]


@dataclass
class Evaluator:
    """Scores trained models on a train sample and the held-out set, the same way every time."""

    settings: EvaluationConfig
    tracker: Tracker
    splits: dict[str, list[Example]]
    judge: Any = None
    embedder: Any = None
    count_tokens: TokenCounter = estimate_tokens
    # The untuned base model's rows per split, once it has been evaluated: trials are compared to it.
    baseline_rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # Each evaluation's rows also into MLflow's GenAI evaluation on its run (mlflow.genai_mirror).
    mirror: bool = False
    last_rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _counted: dict[str, int] = field(default_factory=lambda: {"calls": 0, "cache_hits": 0})

    @property
    def digest(self) -> str:
        """Identity of this evaluation: same digest, scores comparable across runs and studies."""
        rubric_hash = self.judge.rubric.hash if self.judge is not None else None
        return evaluation_digest(self.settings, self.splits, rubric_hash)

    @functools.cached_property
    def checks(self) -> dict[str, list[Checked]]:
        """Per split, what decides whether each answer is right (its checks and the config's)."""
        return {s: split_checks(self.settings, s, e, [example_id(x) for x in e]) for s, e in self.splits.items()}

    @functools.cached_property
    def similarity(self) -> Similarity | None:
        """The study's composite scorer between two answers (answer agreement); None without one."""
        weights = {s: self.settings.consistency_weights[s] for s in self.settings.composite_scorers}
        return composite_similarity(self.settings.composite_scorers, weights, self.embedder)

    @functools.cached_property
    def budgets(self) -> dict[str, int]:
        """New-token budget per split; the references never change, so counted once per study."""
        return {
            split: token_budget([e.reference for e in examples], self.settings, self.count_tokens)
            for split, examples in self.splits.items()
            if examples
        }

    def evaluate(self, answer: Answerer, run_id: str) -> dict[str, float]:
        """Generate, score, log tables and params on ``run_id``; return the metrics.

        When the baseline's rows are known, each split also gets paired differences to it.
        """
        self.tracker.set_tags(run_id, {TAG_EVAL_DIGEST: self.digest})
        metrics: dict[str, float] = {}
        budgets = self.budgets
        self.last_rows = {}
        started, generating = time.perf_counter(), 0.0
        for split, examples in self.splits.items():
            if not examples:
                continue
            begin = time.perf_counter()
            answers = answer([e.prompt for e in examples], max_new_tokens=budgets[split])
            generating += time.perf_counter() - begin
            scores = score_split(
                split,
                [question_of(e) for e in examples],
                [e.reference for e in examples],
                answers,
                scorers=self.settings.scorers,
                embedder=self.embedder,
                judge=self.judge,
                weights={s: self.settings.consistency_weights[s] for s in self.settings.composite_scorers},
                ids=[example_id(e) for e in examples],
            )
            begin = time.perf_counter()
            samples = self._samples(answer, split, examples, budgets[split])
            generating += time.perf_counter() - begin
            rows, checked = check_split(
                split, self.checks[split], answers, scores.rows, similarity=self.similarity, samples=samples
            )
            metrics |= scores.metrics | checked
            self.last_rows[split] = rows
            self.tracker.log_table(run_id, rows, f"eval/{split}.json")
            if split in self.baseline_rows:
                metrics |= vs_baseline(split, rows, self.baseline_rows[split], self.settings)
                metrics |= checked_vs_baseline(split, rows, self.baseline_rows[split], self.settings)
        if self.judge is not None:
            self.tracker.log_params(run_id, self.judge.params())
            metrics |= self._judge_counters()
        metrics |= {EVAL_SECONDS: time.perf_counter() - started, EVAL_GENERATION_SECONDS: generating}
        return metrics | self._mirror(run_id)

    def _mirror(self, run_id: str) -> dict[str, float]:
        """The rows into MLflow's GenAI evaluation; its cost as a metric beside ``eval_seconds``."""
        if not self.mirror or not self.last_rows:
            return {}
        from harness.evaluation.genai_mirror import mirror

        begin = time.perf_counter()
        try:
            mirror(self.tracker.tracking_uri, self.tracker.experiment_id, run_id, self.last_rows)
        except Exception as error:  # MirrorError (rows lost), or MLflow's own failure inside evaluate()
            # The mirror is a view: the run's own tables and metrics (already logged) decide the
            # trial, so a trained trial is not thrown away for it; the run says its view is short.
            reason = f"{type(error).__name__}: {error}"
            log.error("MLflow GenAI view of run %s incomplete: %s", run_id, reason)
            self.tracker.set_tags(run_id, {TAG_MIRROR_INCOMPLETE: reason[:500]})
        return {EVAL_MIRROR_SECONDS: time.perf_counter() - begin}

    def _samples(self, answer: Answerer, split: str, examples: list[Example], budget: int) -> list[list[str]] | None:
        """With ``evaluation.stability``, each held-out prompt answered again that many times, sampling."""
        stability = self.settings.stability
        if stability is None or split != HELDOUT:
            return None
        if not isinstance(answer, Sampling):
            log.warning("evaluation.stability: this model cannot sample answers here; sampled stability skipped")
            return None
        prompts = [e.prompt for e in examples]
        return answer.sample(prompts, stability.samples, stability.temperature, stability.seed, budget)

    def skip_judge_counts(self) -> None:
        """Calls made outside an evaluation (the judge check) are not counted against the next one."""
        if self.judge is not None:
            self._counted = {"calls": self.judge.calls, "cache_hits": self.judge.cache_hits}

    def _judge_counters(self) -> dict[str, float]:
        """Calls and cache hits of this evaluation alone (the judge counts for the whole study)."""
        now = {"calls": self.judge.calls, "cache_hits": self.judge.cache_hits}
        delta = {f"judge_{k}": float(v - self._counted[k]) for k, v in now.items()}
        self._counted = now
        return delta


def check(settings: EvaluationConfig) -> None:
    """Fail on a bad rubric, a missing judge GGUF or llama.cpp now, before any run or trial exists."""
    if not settings.enabled or "judge" not in settings.scorers:
        return
    from harness.endpoints.llama_server import model_gguf, require_llama_cpp
    from harness.evaluation.rubric import load_rubric

    load_rubric(settings.judge.rubric)
    require_llama_cpp(settings.judge, "evaluation.judge")
    if settings.judge.starts_servers:
        gguf = model_gguf(settings.judge.model)
        if not gguf.is_file():
            raise ConfigError(f"evaluation.judge.model: no GGUF file at {gguf}")


@contextlib.contextmanager
def open_evaluator(
    settings: EvaluationConfig,
    tracker: Tracker,
    train: Sequence[Example],
    heldout: Sequence[Example],
    count_tokens: TokenCounter | None = None,
    mirror: bool = False,
) -> Iterator[Evaluator | None]:
    """Load the embedder and start the judge once per study; stop the judge when done."""
    if not settings.enabled:
        yield None
        return
    for warning in one_sided_groups(train, heldout):
        log.warning("%s", warning)
    held = sample(heldout, settings.heldout_sample_size, settings.sample_seed)
    train_size = len(held) if settings.train_sample_size is None else settings.train_sample_size
    splits = {TRAIN: sample(train, train_size, settings.sample_seed), HELDOUT: held}
    embedder = None
    if "embedding" in settings.scorers:
        from harness.evaluation.embedding import load_embedder

        embedder = load_embedder()
    with contextlib.ExitStack() as stack:
        judge = None
        if "judge" in settings.scorers:
            from harness.evaluation.judge_session import open_judge

            judge = stack.enter_context(open_judge(settings.judge))
        count = count_tokens or estimate_tokens
        yield Evaluator(settings, tracker, splits, judge=judge, embedder=embedder, count_tokens=count, mirror=mirror)
