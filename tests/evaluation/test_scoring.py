from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from harness.evaluation.judge import Judge, make_client
from harness.evaluation.rubric import load_rubric
from harness.evaluation.scoring import score_split
from harness.settings.evaluation import JudgeConfig
from tests.evaluation.fake_server import FakeState, Reply, fake_server

RUBRIC = Path(__file__).resolve().parents[2] / "evals" / "consistency_rubric.yaml"
QUESTIONS = ["How do I loop with an index?", "How do I dedupe a list?", "What is *args?"]
REFERENCES = ["Use enumerate().", "Use dict.fromkeys().", "Extra positional arguments."]
ANSWERS = ["Use enumerate().", "Use a set.", "I can't help with that."]


class FixedEmbedder:
    def similarities(self, answers: Sequence[str], references: Sequence[str]) -> list[float]:
        return [0.9, 0.5, 0.1][: len(answers)]


def test_metrics_and_rows_for_every_scorer() -> None:
    state = FakeState(
        reply=lambda body: Reply("I can't help with that.") if "*args" in body["messages"][1]["content"] else Reply()
    )
    with fake_server(state) as url:
        config = JudgeConfig(kind="base_url", model="fake", rubric=RUBRIC, max_retries=0)
        judge = Judge(config, make_client(config, url), load_rubric(RUBRIC))
        result = score_split(
            "heldout",
            QUESTIONS,
            REFERENCES,
            ANSWERS,
            scorers=("embedding", "rouge_l", "judge"),
            embedder=FixedEmbedder(),
            judge=judge,  # type: ignore[arg-type]
        )
    metrics = result.metrics
    assert metrics["consistency/heldout/embedding"] == pytest.approx(0.5)
    assert metrics["consistency/heldout/rouge_l"] == pytest.approx((1.0 + 0.4 + 0.0) / 3, abs=0.1)
    # The refusal is missing, not zero: the mean is over the two judged answers.
    assert metrics["consistency/heldout/judge"] == pytest.approx(80.0)
    assert metrics["consistency/heldout/judge_structure"] == pytest.approx(80.0)
    assert {f"consistency/heldout/judge_{k}" for k in ("content", "detail", "style")} <= set(metrics)
    assert metrics["consistency/heldout/judge_missing"] == 1.0
    assert len(result.rows) == 3
    row = result.rows[2]
    assert row["question"] == "What is *args?" and row["answer"] == "I can't help with that."
    assert row["judge"] is None and row["judge_error"] == "refusal"
    assert result.rows[0]["judge_reasons"] == "Close to the reference in layout." and result.rows[0]["embedding"] == 0.9


def test_only_requested_scorers_run() -> None:
    result = score_split("train", QUESTIONS, REFERENCES, ANSWERS, scorers=("rouge_l",))
    assert set(result.metrics) == {"consistency/train/rouge_l"}
    assert set(result.rows[0]) == {"question", "reference", "answer", "rouge_l"}


def test_misuse_fails_clearly() -> None:
    with pytest.raises(ValueError, match="embedder"):
        score_split("train", QUESTIONS, REFERENCES, ANSWERS, scorers=("embedding",))
    with pytest.raises(ValueError, match="judge"):
        score_split("train", QUESTIONS, REFERENCES, ANSWERS, scorers=("judge",))
    with pytest.raises(ValueError, match="length"):
        score_split("train", QUESTIONS, REFERENCES[:2], ANSWERS, scorers=("rouge_l",))
