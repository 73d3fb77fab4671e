"""How far to trust a scorer: controlled variants of the study's own references, ranked.

Each checked reference gets variants whose right ordering is known (see ``variants``): the
reference itself must beat its layout flattened (structure), another question's answer
(content), its first sentence (detail), itself wrapped in chatter (style must not rise) and a
poor answer that asks the reviewer for top marks (everything). A pair counts 1 when the scorer
orders it right, 0.5 on a tie and 0 when wrong, so 0.5 is chance and a constant scorer gets it.
The same variants run through the deterministic scorers, so the judge is shown beside them.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.config import ConfigError
from harness.data.chat import Example
from harness.evaluation import variants
from harness.metrics import JUDGE, judge_check_key

OVERALL = "overall"
CRITERIA = ("structure", "content", "detail", "style")
# (better variant, worse variant, criteria on which the worse one must score lower)
PAIRS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("reference", "flattened", ("structure", OVERALL)),
    ("reference", "other", ("content", OVERALL)),
    ("reference", "truncated", ("detail", OVERALL)),
    ("reference", "padded", ("style", OVERALL)),
    ("reference", "injected", (*CRITERIA, OVERALL)),
)
# Which criterion each deterministic scorer stands for.
SCORER_CRITERIA = {"structure": "structure", "embedding": "content", "rouge_l": "content", "detail": "detail"}
VERSION = 1  # bump when variants or pairs change: cached checks are then redone


class JudgeCheckError(ConfigError):
    """A judge check that cannot be built from this study's data."""


@dataclass(frozen=True)
class Case:
    question: str
    reference: str
    answers: dict[str, str]  # variant name -> answer text


@dataclass(frozen=True)
class Criterion:
    accuracy: float
    gap: float  # mean score of the better variant minus the worse, in the scorer's units
    pairs: int


@dataclass(frozen=True)
class CheckResult:
    """One scorer's (or the judge's) pairwise accuracy per criterion."""

    scorer: str
    criteria: dict[str, Criterion]
    n_cases: int
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        """Overall accuracy: every pair, ranked by the overall score."""
        return self.criteria[OVERALL].accuracy

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, c in self.criteria.items():
            out[judge_check_key(self.scorer, name, "accuracy")] = c.accuracy
            out[judge_check_key(self.scorer, name, "gap")] = c.gap
        return out

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "criteria": {k: asdict(v) for k, v in self.criteria.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CheckResult:
        criteria = {k: Criterion(**v) for k, v in data["criteria"].items()}
        return cls(data["scorer"], criteria, data["n_cases"], data.get("rows", []))


def build_cases(examples: Sequence[Example], size: int, seed: int = 0) -> list[Case]:
    """Pure: ``size`` references (fixed seed) and their variants; "other" is the next one's answer."""
    from harness.evaluation.evaluator import question_of

    pool = [e for e in examples if e.reference.strip()]
    chosen = random.Random(seed).sample(pool, min(size, len(pool)))
    if len(chosen) < 2:
        raise JudgeCheckError(
            f"evaluation.judge: a judge check needs at least two training answers; the data has {len(pool)}"
        )
    cases = []
    for i, example in enumerate(chosen):
        other = chosen[(i + 1) % len(chosen)].reference
        question = question_of(example)
        cases.append(Case(question, example.reference, variants.build(question, example.reference, other, seed + i)))
    return cases


Scores = Mapping[str, Sequence[Mapping[str, float | None]]]  # variant -> per case -> criterion -> score


def rank(scorer: str, cases: Sequence[Case], scores: Scores) -> CheckResult:
    """Pure: pairwise accuracy and mean gap per criterion from every variant's scores."""
    hits: dict[str, list[float]] = {}
    gaps: dict[str, list[float]] = {}
    rows = []
    for better, worse, names in PAIRS:
        for i, case in enumerate(cases):
            for name in names:
                a, b = scores[better][i].get(name), scores[worse][i].get(name)
                if a is None or b is None or math.isnan(a) or math.isnan(b):
                    continue
                hit = 1.0 if a > b else 0.5 if a == b else 0.0
                hits.setdefault(name, []).append(hit)
                gaps.setdefault(name, []).append(a - b)
                rows.append(
                    {
                        "question": case.question,
                        "better": better,
                        "worse": worse,
                        "criterion": name,
                        "better_score": a,
                        "worse_score": b,
                        "right": hit,
                    }
                )
    criteria = {
        name: Criterion(sum(hits[name]) / len(hits[name]), sum(gaps[name]) / len(gaps[name]), len(hits[name]))
        for name in (*CRITERIA, OVERALL)
        if hits.get(name)
    }
    return CheckResult(scorer, criteria, len(cases), rows)


def run_judge(judge: Any, cases: Sequence[Case]) -> CheckResult:
    """Score every variant with the judge (cached calls are free) and rank them."""
    from harness.evaluation.judge import JudgeItem

    scores: dict[str, list[dict[str, float | None]]] = {}
    for name in variants.VARIANTS:
        items = [JudgeItem(c.question, c.reference, c.answers[name]) for c in cases]
        scores[name] = [{**s.criteria, OVERALL: s.overall} for s in judge.score_many(items)]
    return rank(JUDGE, cases, scores)


def run_scorers(
    columns_for: Callable[[Sequence[str], Sequence[str]], dict[str, list[Any]]], cases: Sequence[Case]
) -> list[CheckResult]:
    """The same check for each deterministic scorer and the composite."""
    references = [c.reference for c in cases]
    per_variant = {name: columns_for([c.answers[name] for c in cases], references) for name in variants.VARIANTS}
    results = []
    for scorer in per_variant["reference"]:
        criterion = SCORER_CRITERIA.get(scorer)
        scores = {
            name: [{OVERALL: v, **({criterion: v} if criterion else {})} for v in columns[scorer]]
            for name, columns in per_variant.items()
        }
        results.append(rank(scorer, cases, scores))
    return results


def cache_key(judge_identity: str, rubric_hash: str, cases: Sequence[Case]) -> str:
    """Judge, rubric and the exact variant texts: any change means a new check."""
    payload = json.dumps([VERSION, judge_identity, rubric_hash, [asdict(c) for c in cases]], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def cached(path: Path | None, key: str, compute: Callable[[], CheckResult]) -> tuple[CheckResult, bool]:
    """The check stored under ``path/key.json``, or a fresh one saved there; (result, was cached)."""
    file = path / f"{key}.json" if path is not None else None
    if file is not None and file.is_file():
        try:
            return CheckResult.from_json(json.loads(file.read_text())), True
        except (ValueError, KeyError, TypeError):
            pass  # a damaged file is recomputed, not trusted
    result = compute()
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(".tmp")
        tmp.write_text(json.dumps(result.to_json()))
        tmp.replace(file)  # never a half-written check
    return result, False


def check_judge(judge: Any, examples: Sequence[Example], size: int, seed: int = 0) -> tuple[CheckResult, bool]:
    """The judge's check on ``examples``, from the check cache beside the judge cache when there."""
    cases = build_cases(examples, size, seed)
    cache_path = getattr(judge.config, "cache_path", None)
    folder = Path(cache_path).expanduser().parent / "judge_checks" if cache_path else None
    key = cache_key(judge.identity, judge.rubric.hash, cases)
    return cached(folder, key, lambda: run_judge(judge, cases))


def run_check(config: Any) -> list[CheckResult]:
    """``harness judge-check``: the study's judge and every deterministic scorer on the same cases."""
    from harness.data.split import load_splits
    from harness.evaluation.embedding import load_embedder
    from harness.evaluation.judge_session import open_judge
    from harness.evaluation.scoring import composite, deterministic_columns
    from harness.settings.evaluation import COMPOSITE, DETERMINISTIC

    settings = config.evaluation
    train, _ = load_splits(config.data, config.system_prompt)
    embedder = load_embedder()
    weights = settings.consistency_weights

    def columns_for(answers: Sequence[str], references: Sequence[str]) -> dict[str, list[Any]]:
        columns = deterministic_columns(DETERMINISTIC, answers, references, embedder)
        return {**columns, COMPOSITE: composite(columns, weights)}

    cases = build_cases(train, settings.judge.check_size, settings.sample_seed)
    with open_judge(settings.judge) as judge:
        judged, _ = check_judge(judge, train, settings.judge.check_size, settings.sample_seed)
    return [judged, *run_scorers(columns_for, cases)]
