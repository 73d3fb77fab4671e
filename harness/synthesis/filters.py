"""Pure filters for generated questions and answers; each rejection has a name that is counted.

Order matters only for which name a bad answer is counted under: the cheap, certain checks come
first (no question, no answer), then chatter, layout and length; near-duplicates last, over the
answers that passed everything else, in a fixed order so that the same items are always kept.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from harness.evaluation.layout import blocks
from harness.settings.synthesis import FilterConfig

# Names as they are counted and logged (metrics ``synth/rejected/<name>``), in the order applied.
FILTERS: tuple[str, ...] = (
    "question_invalid",
    "empty",
    "truncated",
    "chatter",
    "question_back",
    "layout",
    "length",
    "near_duplicate",
)

# List markers, bold, and a leading one-word label ("Q:", "Question 2:", "Ask:").
_PREFIX = re.compile(r"^\s*(?:[-*>#]+\s*|\d{1,2}[.)]\s*|\*\*)*(?:[a-z]+\s*\d*\s*:\s*)?", re.IGNORECASE)
_QUOTES = "\"'“”‘’`*"
_FENCED = re.compile(r"^\s*(`{3,}|~{3,}).*?(^\s*\1\s*$|\Z)", re.MULTILINE | re.DOTALL)


def clean_question(text: str) -> str | None:
    """The question in a reply to "write a question": on its first line holding a '?', the last
    sentence ending in '?' (small models wrap it in chatter: "Great idea! ... Question: How ...?"),
    without list markers, "Question:" labels and quotes. None when there is no such sentence."""
    for line in text.splitlines():
        if "?" not in line:
            continue
        line = _PREFIX.sub("", line)
        line = re.split(r"\bquestion\s*:\s*", line, flags=re.IGNORECASE)[-1]
        line = line[: line.rfind("?") + 1].strip(_QUOTES).strip()
        question = re.split(r"(?<=[.!?])\s+(?=[A-Z])", line)[-1].strip(_QUOTES).strip()
        if len(question.split()) >= 3:
            return question
    return None


def words(text: str) -> int:
    return len(text.split())


def is_chatter(answer: str, patterns: Sequence[str]) -> bool:
    return any(re.search(p, answer, re.IGNORECASE | re.MULTILINE) for p in patterns)


def asks_back(answer: str) -> bool:
    """The last line of prose (code blocks aside) ends with a question to the user."""
    prose = [line.strip() for line in _FENCED.sub("", answer).splitlines() if line.strip()]
    return bool(prose) and prose[-1].rstrip("*_ )").endswith("?")


def layout_problem(answer: str, filters: FilterConfig) -> str | None:
    """What the answer's layout lacks (labels, a code block, an opening paragraph), or None."""
    found = blocks(answer)
    labels = {b.label for b in found if b.kind == "label"}
    missing = [name for name in filters.required_labels if _label(name) not in labels]
    if missing:
        return f"no {', '.join(missing)} label"
    if filters.require_code_block and not any(b.kind == "code" for b in found):
        return "no code block"
    if filters.require_opening and (not found or found[0].label != "opening"):
        return "no opening paragraph"
    return None


def _label(name: str) -> str:
    # Through the layout parser itself, so a required label is normalised exactly like a found one.
    parsed = blocks(f"**{name}:**")
    return parsed[0].label if parsed else name.lower()


def reject_reason(
    question: str | None, answer: str | None, filters: FilterConfig, truncated: bool = False
) -> str | None:
    """The first per-item filter an item fails (a name from FILTERS), or None when it passes.
    ``truncated``: the endpoint stopped the answer at max_tokens (half a code block, no ending)."""
    if question is None or is_chatter(question, filters.reject_patterns):
        return "question_invalid"
    if answer is None or not answer.strip():
        return "empty"
    if truncated:
        return "truncated"
    if is_chatter(answer, filters.reject_patterns):
        return "chatter"
    if filters.reject_question_back and asks_back(answer):
        return "question_back"
    if layout_problem(answer, filters) is not None:
        return "layout"
    if not filters.min_words <= words(answer) <= filters.max_words:
        return "length"
    return None


def near_duplicates(vectors: Any, threshold: float) -> list[bool]:
    """Pure: which rows (normalised embeddings, in order) are near-duplicates of an earlier kept row."""
    import numpy as np

    kept: list[int] = []
    duplicate: list[bool] = []
    for i in range(len(vectors)):
        similar = bool(kept) and float(np.max(vectors[kept] @ vectors[i])) >= threshold
        duplicate.append(similar)
        if not similar:
            kept.append(i)
    return duplicate
