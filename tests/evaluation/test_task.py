"""Task accuracy and answer stability on scripted answers, where the right values are known."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from harness.data.chat import Example
from harness.evaluation.paired import compare_rows
from harness.evaluation.stability import (
    agreement,
    composite_similarity,
    group_stability,
    mean_pairwise_similarity,
    sampled_stability,
)
from harness.evaluation.task import Checked, checked_example, task_columns, task_metrics, task_vs_baseline
from harness.settings.asserts import Assertion

PORT = (Assertion(type="contains", value="8443"),)


def item(group: str | None = None, checks: tuple[Assertion, ...] = PORT) -> Checked:
    return Checked(checks, None, group, {"reference": "8443"})


def table(items: Sequence[Checked], answers: Sequence[str]) -> list[dict[str, Any]]:
    columns = task_columns(items, answers)
    return [
        {"id": str(i), "answer": a} | {name: values[i] for name, values in columns.items()}
        for i, a in enumerate(answers)
    ]


def exact(a: Sequence[str], b: Sequence[str]) -> list[float]:
    return [float(x == y) for x, y in zip(a, b, strict=True)]


def test_accuracy_counts_checked_examples_and_whole_groups() -> None:
    items = [item("g1"), item("g1"), item("g2"), item("g2"), item(None), item(None, checks=())]
    answers = ["port 8443", "8443", "port 8443", "8080", "8443", "unchecked"]
    rows = table(items, answers)
    assert [r["correct"] for r in rows] == [1.0, 1.0, 1.0, 0.0, 1.0, None]
    assert rows[3]["failed_checks"] == "contains '8443': expected the answer to contain '8443'"
    assert rows[0]["failed_checks"] == "" and rows[5]["failed_checks"] is None
    assert [r["group"] for r in rows] == ["g1", "g1", "g2", "g2", None, None]
    metrics = task_metrics("heldout", rows)
    # 4 of 5 checked answers right; of the questions g1, g2 and the lone row, g1 and the row are.
    assert metrics == {"task/heldout/accuracy": 0.8, "task/heldout/group_accuracy": pytest.approx(2 / 3)}


def test_no_checks_no_task_columns_or_metrics() -> None:
    assert task_columns([item(None, checks=())], ["x"]) == {}
    assert task_columns([item("g", checks=())], ["x"]) == {"group": ["g"]}
    assert task_metrics("heldout", [{"answer": "x"}]) == {}


def test_checked_example_passes_the_example_to_python_checks() -> None:
    example = Example(
        ({"role": "user", "content": "Which port?"}, {"role": "assistant", "content": "8443"}),
        "data.jsonl:3",
        checks=PORT,
        group="port",
        threshold=0.5,
    )
    checked = checked_example(example, (Assertion(type="is-json"),), "data.jsonl:3")
    assert [c.type for c in checked.checks] == ["contains", "is-json"]  # the row's, then the config's
    assert (checked.threshold, checked.group) == (0.5, "port")
    assert checked.context["question"] == "Which port?" and checked.context["reference"] == "8443"
    assert checked.context["id"] == "data.jsonl:3" and checked.context["group"] == "port"


def test_accuracy_vs_baseline_resamples_groups_when_rows_carry_them() -> None:
    # 10 questions x 4 paraphrases answered alike (perfectly correlated): the model gains 6 questions.
    groups = [f"q{q}" for q in range(10) for _ in range(4)]
    trial = table([item(g) for g in groups], ["8443" if int(g[1:]) < 7 else "no" for g in groups])
    base = table([item(g) for g in groups], ["8443" if int(g[1:]) < 1 else "no" for g in groups])
    grouped = task_vs_baseline("heldout", trial, base, level=0.9, resamples=2000)
    assert grouped["task/heldout/accuracy_vs_baseline"] == pytest.approx(0.6)
    by_row = [{k: v for k, v in r.items() if k != "group"} for r in trial]
    by_row_base = [{k: v for k, v in r.items() if k != "group"} for r in base]
    rows_only = task_vs_baseline("heldout", by_row, by_row_base, level=0.9, resamples=2000)
    width = grouped["task/heldout/accuracy_vs_baseline_ci_high"] - grouped["task/heldout/accuracy_vs_baseline_ci_low"]
    row_width = (
        rows_only["task/heldout/accuracy_vs_baseline_ci_high"] - rows_only["task/heldout/accuracy_vs_baseline_ci_low"]
    )
    assert width > 1.5 * row_width  # 10 independent questions, not 40 independent rows


def test_groups_of_one_row_give_the_row_bootstrap() -> None:
    answers = ["8443", "no", "8443", "8443", "no", "8443", "no", "8443"]
    baseline = ["no", "no", "8443", "no", "no", "no", "no", "8443"]
    trial = table([item(f"g{i}") for i in range(8)], answers)
    base = table([item(f"g{i}") for i in range(8)], baseline)
    ours = task_vs_baseline("train", trial, base, level=0.9, resamples=3000)
    theirs = compare_rows(trial, base, "correct", level=0.9, resamples=3000)
    assert theirs is not None
    key = "task/train/accuracy_vs_baseline"
    assert (ours[key], ours[f"{key}_ci_low"], ours[f"{key}_ci_high"]) == pytest.approx(
        (theirs.mean, theirs.low, theirs.high), abs=1e-12
    )


def test_correct_and_answer_agreement_over_paraphrases() -> None:
    groups = ["a", "a", "a", "b", "b", "c", "c", None]
    answers = ["8443", "8443", "8443", "8443", "8080", "no", "nope", "8443"]
    rows = table([item(g) for g in groups], answers)
    metrics = group_stability("heldout", rows, exact)
    # a: all right, b: one right one wrong, c: all wrong -> 2 of 3 agree; the ungrouped row is no group.
    assert metrics["stability/heldout/correct_agreement"] == pytest.approx(2 / 3)
    # a: identical answers (1), b and c: differing (0) -> mean 1/3.
    assert metrics["stability/heldout/answer_agreement"] == pytest.approx(1 / 3)
    assert "stability/heldout/answer_agreement" not in group_stability("heldout", rows, None)


def test_pairwise_similarity_scores_each_pair_both_ways() -> None:
    calls: list[tuple[str, str]] = []

    def directional(a: Sequence[str], b: Sequence[str]) -> list[float]:
        calls.extend(zip(a, b, strict=True))
        return [1.0 if x < y else 0.0 for x, y in zip(a, b, strict=True)]

    assert mean_pairwise_similarity([["x", "y"], ["solo"]], directional) == 0.5
    assert sorted(calls) == [("x", "y"), ("y", "x")]
    assert mean_pairwise_similarity([["solo"]], directional) is None
    assert agreement([[True], [True, True], [False, True]]) == 0.5


def test_sampled_agreement_is_the_share_of_prompts_all_right_or_all_wrong() -> None:
    items = [item(), item(), item(), item(checks=())]
    samples = [["8443"] * 3, ["8443", "no", "8443"], ["no"] * 3, ["a", "b", "c"]]
    metrics, shares = sampled_stability("heldout", items, samples, exact)
    assert metrics["stability/heldout/sampled_agreement"] == pytest.approx(2 / 3)
    # identical sets score 1, the mixed set 1/3 (one identical pair of three), all-different 0.
    assert metrics["stability/heldout/sampled_answer_agreement"] == pytest.approx((1 + 1 / 3 + 1 + 0) / 4)
    assert shares == [1.0, pytest.approx(2 / 3), 0.0, None]


def test_composite_similarity_is_the_studys_composite_between_answers() -> None:
    similarity = composite_similarity(("rouge_l",), {"rouge_l": 1.0})
    assert similarity is not None
    assert list(similarity(["port 8443 it is"], ["port 8443 it is"])) == [pytest.approx(1.0)]
    assert composite_similarity(("rouge_l",), {}) is None


def test_groups_only_one_split_has_are_named() -> None:
    from harness.evaluation.checked import one_sided_groups

    def ex(group: str | None) -> Example:
        return Example(({"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}), "x:1", group=group)

    train, heldout = [ex("port"), ex("flag"), ex(None)], [ex("port"), ex("class")]
    assert one_sided_groups(train, heldout) == [
        "1 group(s) only in the training split: flag",
        "1 group(s) only in the held-out split: class",
    ]
    assert one_sided_groups(train, [ex("port"), ex("flag")]) == []
    assert one_sided_groups([ex(None)], heldout) == []  # no groups on one side: nothing to compare
