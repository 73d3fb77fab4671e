"""The scored rows mirrored into MLflow's GenAI evaluation, read back from a real store in tmp_path."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import mlflow
import pytest

from harness.evaluation import genai_mirror
from harness.evaluation.genai_mirror import MirrorError, assessment, mirror, mirrored_scorers, records
from harness.tracking import Tracker


def table(split: str, size: int) -> list[dict]:
    rows = []
    for i in range(size):
        rows.append(
            {
                "id": f"{split}.jsonl:{i + 1}",
                "question": f"How do I do thing {i}?",
                "reference": f"Do it like this ({i}).",
                "answer": f"Like that ({i}).",
                "structure": i / size,
                "rouge_l": 0.5,
                "consistency": None if i == 0 else 0.25,  # a row the harness could not score
                "correct": float(i % 2) if split == "heldout" else None,
                "failed_checks": None if i % 2 else "contains 'this': no",
            }
        )
    return rows


def test_records_carry_question_id_split_reference_and_answer() -> None:
    tables = {"heldout": table("heldout", 2), "train": table("train", 1)}
    data = records("run-1", tables)
    assert len({r.pop("request_id") for r in data}) == 3  # unique per row (and per run)
    assert records("run-2", tables)[0]["request_id"] != records("run-1", tables)[0]["request_id"]
    assert [r["inputs"]["id"] for r in data] == ["heldout.jsonl:1", "heldout.jsonl:2", "train.jsonl:1"]
    assert data[2]["inputs"] == {"question": "How do I do thing 0?", "id": "train.jsonl:1", "split": "train"}
    assert data[0]["outputs"] == "Like that (0)." and data[0]["expectations"] == {
        "expected_response": "Do it like this (0)."
    }
    assert data[1]["tags"] == {"harness.split": "heldout", "harness.example_id": "heldout.jsonl:2"}
    assert mirrored_scorers(tables) == ["structure", "rouge_l", "consistency", "correct"]
    assert assessment("correct", tables["heldout"][0]) == (0.0, "contains 'this': no")
    assert assessment("consistency", tables["heldout"][0]) == (None, None)
    assert assessment("judge", {"judge": 0.75, "judge_reasons": ["clear", ""]}) == (0.75, "clear")


def test_every_row_reaches_the_store_with_one_assessment_per_scorer(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    tracker = Tracker(uri, "mirror")
    run_id = tracker.run("trial-0", {})
    tables = {"heldout": table("heldout", 30), "train": table("train", 20)}
    before_uri = mlflow.get_tracking_uri()

    done = mirror(uri, tracker.experiment_id, run_id, tables)

    assert done.rows == 50 and done.scorers == ("structure", "rouge_l", "consistency", "correct")
    # Globals put back: tracking URI, no active run, the workers variable; the run still RUNNING.
    assert mlflow.get_tracking_uri() == before_uri and mlflow.active_run() is None
    assert genai_mirror.WORKERS_ENV not in os.environ
    run = tracker.client.get_run(run_id)
    assert run.info.status == "RUNNING"
    assert run.data.metrics == {}  # the harness's own metrics are the only ones
    mlflow.set_tracking_uri(uri)
    try:
        traces = mlflow.search_traces(locations=[tracker.experiment_id], run_id=run_id, return_type="list")
    finally:
        mlflow.set_tracking_uri(before_uri)
    assert len(traces) == 50
    by_id = {t.info.tags["harness.example_id"]: t for t in traces}
    rows = {row["id"]: row for rows in tables.values() for row in rows}
    for example_id, trace in by_id.items():  # each row's own texts on its own trace
        expected = [a.value for a in trace.info.assessments if a.name == "expected_response"]
        assert (
            expected == [rows[example_id]["reference"]]
            and json.loads(trace.data.response) == rows[example_id]["answer"]
        )
        assert json.loads(trace.data.request)["id"] == example_id
    first = {a.name: a for a in by_id["heldout.jsonl:1"].info.assessments}
    assert first["structure"].value == 0.0 and first["rouge_l"].value == 0.5
    assert first["correct"].value == 0.0 and first["correct"].rationale == "contains 'this': no"
    assert "consistency" not in first  # not scored by the harness: no made-up assessment
    assert by_id["train.jsonl:3"].info.tags["harness.split"] == "train"
    assert {a.name for a in by_id["train.jsonl:3"].info.assessments} >= {"structure", "rouge_l", "consistency"}

    # The same answers on another run, after the same global seed (two trials that answered alike):
    # rows of their own, not shared, and the seeded random state is as the trial left it.
    other = tracker.run("trial-1", {})
    random.seed(0)
    mirror(uri, tracker.experiment_id, tracker.run("trial-2", {}), {"heldout": table("heldout", 15)})
    random.seed(0)
    assert mirror(uri, tracker.experiment_id, other, {"heldout": table("heldout", 15)}).rows == 15
    seeded = random.random() == random.Random(0).random()
    mlflow.set_tracking_uri(uri)
    try:
        everything = mlflow.search_traces(locations=[tracker.experiment_id], return_type="list", include_spans=False)
        again = mlflow.search_traces(locations=[tracker.experiment_id], run_id=run_id, return_type="list")
    finally:
        mlflow.set_tracking_uri(before_uri)
    assert len(everything) == 80 and len(again) == 50
    assert seeded
    assert all(len([a for a in t.info.assessments if a.name == "rouge_l"]) == 1 for t in again)


def test_missing_rows_fail_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    tracker = Tracker(uri, "mirror")
    run_id = tracker.run("trial-0", {})
    monkeypatch.setattr(mlflow.genai, "evaluate", lambda data, scorers: None)  # stores nothing, says nothing
    with pytest.raises(MirrorError, match="stored 0 of 3 rows"):
        mirror(uri, tracker.experiment_id, run_id, {"heldout": table("heldout", 3)})
    assert tracker.client.get_run(run_id).info.status == "RUNNING"


def test_every_row_and_tag_reaches_a_postgresql_store(postgres_url: str) -> None:
    tracker = Tracker(postgres_url, "mirror")
    run_id = tracker.run("trial-0", {})
    done = mirror(postgres_url, tracker.experiment_id, run_id, {"heldout": table("heldout", 40)})
    assert done.rows == 40  # counted back, each with its example-id tag (MirrorError otherwise)
    assert tracker.client.get_run(run_id).info.status == "RUNNING"


def _store_nothing(data: object, scorers: object) -> None:
    return None


def _fail(data: object, scorers: object) -> None:
    raise RuntimeError("the store went away")


@pytest.mark.parametrize(
    ("evaluate", "reason"),
    [
        (_store_nothing, "MirrorError: MLflow's GenAI evaluation stored 0 of 2 rows"),
        (_fail, "RuntimeError: the store went away"),
    ],
)
def test_an_incomplete_mirror_leaves_the_trial_its_scores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, evaluate: object, reason: str
) -> None:
    """The view lost its rows, or MLflow failed inside it: the run says so in a tag; its own
    metrics and tables stand."""
    from harness.evaluation.evaluator import Evaluator
    from tests.evaluation.test_digest import SPLITS, EchoAnswers, settings

    tracker = Tracker(f"sqlite:///{tmp_path}/mlruns/mlflow.db", "mirror")
    run_id = tracker.run("trial-0", {})
    monkeypatch.setattr(mlflow.genai, "evaluate", evaluate)
    metrics = Evaluator(settings(), tracker, SPLITS, mirror=True).evaluate(EchoAnswers().base_answerer(), run_id)
    assert "consistency/heldout/rouge_l" in metrics
    run = tracker.client.get_run(run_id)
    assert run.data.tags["harness.genai_mirror_incomplete"].startswith(reason)
    assert run.info.status == "RUNNING"  # the trial's own runner finishes it
    assert {a.path for a in tracker.client.list_artifacts(run_id, "eval")} == {"eval/heldout.json", "eval/train.json"}
