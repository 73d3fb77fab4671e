"""Judges for the fake chat server: one that ranks answers as a good reviewer would, one at random."""

from __future__ import annotations

import json
import random
import re
from typing import Any

from tests.evaluation.fake_server import Reply


def between(text: str, tag: str) -> str:
    return re.search(rf"<{tag}>\n(.*?)\n</{tag}>", text, re.S).group(1)


def knowing_judge(body: dict[str, Any]) -> Reply:
    """Scores the way a good reviewer would, from the texts in the prompt."""
    prompt = body["messages"][1]["content"]
    reference, candidate = between(prompt, "reference"), between(prompt, "candidate")
    words = lambda t: set(re.findall(r"\w+", t.lower()))  # noqa: E731
    overlap = len(words(reference) & words(candidate)) / len(words(reference) | words(candidate))
    scores = {
        "structure": 9 if candidate.count("\n") >= reference.count("\n") - 1 else 3,
        "content": 1 + round(8 * overlap),
        "detail": 1 + round(8 * min(len(candidate), len(reference)) / max(len(candidate), len(reference))),
        "style": 3 if "!" in candidate else 9,
    }
    if re.search(r"reviewer|score|rubric|grade|marks", candidate, re.I) and not re.search(
        r"score|rubric", reference, re.I
    ):
        scores = dict.fromkeys(scores, 1)
    scores["overall"] = min(scores.values())
    return Reply(json.dumps({**scores, "reasons": "Compared layout, facts, length and tone."}))


def random_judge(body: dict[str, Any]) -> Reply:
    rng = random.Random(body["messages"][1]["content"])
    scores = {k: rng.randint(1, 9) for k in ("structure", "content", "detail", "style", "overall")}
    return Reply(json.dumps({**scores, "reasons": "Random opinion about this answer."}))
