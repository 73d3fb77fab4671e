"""Pairing two evaluations answer by answer: worst for the second side first, nothing invented."""

from __future__ import annotations

from harness.evaluation.side_by_side import pair, render_html


def row(example_id: str, answer: str, consistency: float | None, structure: float = 0.5, **extra: object) -> dict:
    return {
        "id": example_id,
        "question": f"question {example_id}",
        "reference": f"reference {example_id}",
        "answer": answer,
        "structure": structure,
        "consistency": consistency,
        **extra,
    }


def test_pairs_by_split_and_id_worst_for_the_second_side_first() -> None:
    first = {
        "heldout": [row("h:1", "a1", 0.9), row("h:2", "a2", 0.5), row("h:3", "a3", 0.4), row("h:9", "gone", 0.1)],
        "train": [row("t:1", "ta", 0.2)],
    }
    second = {
        "heldout": [row("h:3", "b3", 0.8), row("h:1", "b1", 0.1), row("h:2", "b2", None), row("h:7", "new", 0.3)],
        "train": [row("t:1", "tb", 0.1, structure=0.9)],
    }
    comparison = pair(first, second)

    assert [(p.split, p.example_id) for p in comparison.pairs] == [
        ("heldout", "h:1"),  # -0.8
        ("train", "t:1"),  # -0.1
        ("heldout", "h:3"),  # +0.4
        ("heldout", "h:2"),  # no composite on one side: last
    ]
    worst = comparison.pairs[0]
    assert worst.answers == ("a1", "b1") and worst.question == "question h:1"
    assert round(worst.diff("consistency") or 0, 6) == -0.8 and worst.diff("structure") == 0.0
    assert comparison.pairs[-1].diff("consistency") is None
    assert comparison.key == "consistency" and comparison.scorers == ("structure", "consistency")
    assert (comparison.only_first, comparison.only_second) == (1, 1)
    assert comparison.splits == ("heldout", "train")


def test_without_a_composite_the_first_shared_scorer_orders() -> None:
    first = {"heldout": [row("1", "a", None, structure=0.2), row("2", "a", None, structure=0.9)]}
    second = {"heldout": [row("1", "b", None, structure=0.8), row("2", "b", None, structure=0.1)]}
    comparison = pair(first, second)
    assert comparison.key == "structure" and [p.example_id for p in comparison.pairs] == ["2", "1"]


def test_the_page_escapes_answers_and_shows_both_sides() -> None:
    first = {"heldout": [row("1", "<script>alert(1)</script>", 0.9)]}
    second = {"heldout": [row("1", "**bold** & more", 0.2)]}
    page = render_html(pair(first, second), ("trial 3", "baseline"), "trial 3 vs baseline")
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "**bold** &amp; more" in page and "A: trial 3" in page and "B: baseline" in page
    assert "consistency -0.70" in page
