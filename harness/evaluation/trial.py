"""Evaluate a trained model inside a study: answers, scores, tables and judge counters on its run."""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.config import ConfigError
from harness.data.chat import Example, digest
from harness.evaluation.scoring import score_split
from harness.evaluation.settings import EvaluationConfig
from harness.tracking import Tracker

TAG_EVAL_DIGEST = "harness.eval_digest"
Answerer = Callable[[list[list[dict[str, Any]]]], list[str]]


def sample(examples: Sequence[Example], size: int | None, seed: int) -> list[Example]:
    """Pure: a fixed-seed sample (all of them when size is None or larger than the set)."""
    if size is None or size >= len(examples):
        return list(examples)
    return random.Random(seed).sample(list(examples), size)


def question_of(example: Example) -> str:
    return next(m["content"] for m in reversed(example.prompt) if m["role"] == "user")


@dataclass
class Evaluator:
    """Scores trained models on a train sample and the held-out set, the same way every time."""

    settings: EvaluationConfig
    tracker: Tracker
    splits: dict[str, list[Example]]
    judge: Any = None
    embedder: Any = None
    _counted: dict[str, int] = field(default_factory=lambda: {"calls": 0, "cache_hits": 0})

    @property
    def digest(self) -> str:
        """Identity of this evaluation: same digest, scores comparable across runs and studies."""
        h = hashlib.sha256(self.settings.model_dump_json(exclude={"enabled", "baseline"}).encode())
        for split, examples in sorted(self.splits.items()):
            h.update(f"{split}:{digest(examples)}".encode())
        if self.judge is not None:
            h.update(json.dumps(self.judge.params(), sort_keys=True).encode())
        return h.hexdigest()[:16]

    def evaluate(self, answer: Answerer, run_id: str) -> dict[str, float]:
        """Generate, score, log tables and params on ``run_id``; return the metrics."""
        self.tracker.set_tags(run_id, {TAG_EVAL_DIGEST: self.digest})
        metrics: dict[str, float] = {}
        for split, examples in self.splits.items():
            if not examples:
                continue
            answers = answer([e.prompt for e in examples])
            scores = score_split(
                split,
                [question_of(e) for e in examples],
                [e.reference for e in examples],
                answers,
                scorers=self.settings.scorers,
                embedder=self.embedder,
                judge=self.judge,
            )
            metrics |= scores.metrics
            self.tracker.log_table(run_id, scores.rows, f"eval/{split}.json")
        if self.judge is not None:
            self.tracker.log_params(run_id, self.judge.params())
            metrics |= self._judge_counters()
        return metrics

    def _judge_counters(self) -> dict[str, float]:
        """Calls and cache hits of this evaluation alone (the judge counts for the whole study)."""
        now = {"calls": self.judge.calls, "cache_hits": self.judge.cache_hits}
        delta = {f"judge_{k}": float(v - self._counted[k]) for k, v in now.items()}
        self._counted = now
        return delta


def check(settings: EvaluationConfig) -> None:
    """Fail on a bad rubric or a missing judge GGUF now, before any run or trial exists."""
    if not settings.enabled or "judge" not in settings.scorers:
        return
    from harness.evaluation.judge_session import judge_gguf
    from harness.evaluation.rubric import load_rubric

    load_rubric(settings.judge.rubric)
    if settings.judge.kind == "llama_cpp" and settings.judge.base_url is None:
        gguf = judge_gguf(settings.judge.model)
        if not gguf.is_file():
            raise ConfigError(f"evaluation.judge.model: no GGUF file at {gguf}")


@contextlib.contextmanager
def open_evaluator(
    settings: EvaluationConfig, tracker: Tracker, train: Sequence[Example], heldout: Sequence[Example]
) -> Iterator[Evaluator | None]:
    """Load the embedder and start the judge once per study; stop the judge when done."""
    if not settings.enabled:
        yield None
        return
    splits = {
        "train": sample(train, settings.train_sample_size, settings.sample_seed),
        "heldout": sample(heldout, settings.heldout_sample_size, settings.sample_seed),
    }
    embedder = None
    if "embedding" in settings.scorers:
        from harness.evaluation.embedding import load_embedder

        embedder = load_embedder()
    with contextlib.ExitStack() as stack:
        judge = None
        if "judge" in settings.scorers:
            from harness.evaluation.judge_session import open_judge

            judge = stack.enter_context(open_judge(settings.judge))
        yield Evaluator(settings, tracker, splits, judge=judge, embedder=embedder)
