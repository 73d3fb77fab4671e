"""Reading judge replies: JSON scores, G-Eval probability weighting, refusal detection.

G-Eval weighting: the rubric asks for single-digit scores (scale within 0..9), so each score is
one token. Where the endpoint returns ``top_logprobs`` we locate the token that carries a
criterion's score and replace the sampled digit by the expectation over the candidate digit
tokens, sum(p_i * d_i) / sum(p_i), keeping only candidates inside the scale (" 7" and "7" count
as the same digit). This turns a coarse 1-9 vote into a continuous score that reflects the
judge's uncertainty. Without logprobs, or when a score is not a single token, the sampled
integer is used as is.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_REFUSAL = re.compile(
    r"\b(i\s*(can['’]?t|cannot|won['’]?t|am unable|'m unable)|i['’]m sorry|i am sorry|"
    r"as an ai)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class TokenLogprobs:
    """One generated token and its top alternatives (token text -> logprob)."""

    token: str
    top: tuple[tuple[str, float], ...]


class ParseError(ValueError):
    """A reply without a complete set of scores; ``kind`` is "unparsable" or "refusal"."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


def parse_reply(text: str, keys: Sequence[str], low: int, high: int) -> tuple[dict[str, int], str]:
    """Integer scores for ``keys`` (+ "overall" when given) and the reasons string."""
    data = _json_object(text)
    if data is not None:
        scores = {k: _score(data.get(k), low, high) for k in (*keys, "overall")}
        reasons = data.get("reasons", "")
        reasons = reasons if isinstance(reasons, str) else json.dumps(reasons)
    else:
        # Truncated JSON (max_tokens hit inside "reasons") still carries the scores.
        scores = {k: _score(_regex_value(text, k), low, high) for k in (*keys, "overall")}
        reasons = ""
    missing = [k for k in keys if scores[k] is None]
    if missing:
        kind = "refusal" if looks_like_refusal(text) else "unparsable"
        raise ParseError(kind, f"no score for {', '.join(missing)} in {text[:200]!r}")
    found = {k: v for k, v in scores.items() if v is not None}
    return found, reasons.strip()


_WORD = re.compile(r"[A-Za-z]{2,}")


def clean_reasons(text: str) -> str:
    """A judge's reasons when they read as a sentence (three or more words); else "".

    Small judges fill the field with "###", "...", "7.0" or an echo of the answer's opening;
    logging those would pass noise off as an explanation.
    """
    text = " ".join(text.split())
    words = _WORD.findall(text)
    if len(words) < 3 or sum(map(len, words)) < 0.5 * len(text.replace(" ", "")):
        return ""
    return text[:500]


def looks_like_refusal(text: str) -> bool:
    return bool(_REFUSAL.search(text))


def weighted_scores(tokens: Sequence[TokenLogprobs], keys: Sequence[str], low: int, high: int) -> dict[str, float]:
    """Probability-weighted scores for the keys whose score is a single, locatable token."""
    text, starts = "", []
    for token in tokens:
        starts.append(len(text))
        text += token.token
    weighted = {}
    for key in keys:
        match = re.search(rf'"{re.escape(key)}"\s*:\s*"?(\d+)', text)
        if match is None:
            continue
        index = _token_at(starts, match.start(1))
        if tokens[index].token.strip() != match.group(1):
            continue  # the score shares its token with other text, or spans several tokens
        value = _expectation(tokens[index].top, low, high)
        if value is not None:
            weighted[key] = value
    return weighted


def first_choice(response: Any) -> Any:
    """The reply's first choice; ParseError("malformed") when it has none, or one without a message.

    Servers that speak the protocol loosely send empty or null ``choices`` (content filters,
    overload) and the SDK does not validate replies by default: a missing score, not a crash.
    """
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise ParseError("malformed", f"no choices in the reply: {str(response)[:200]!r}")
    choice = choices[0]
    if getattr(choice, "message", None) is None:
        raise ParseError("malformed", "the first choice has no message")
    return choice


def message_text(choice: Any) -> str:
    """The reply's text; ParseError for a refusal or for content that is not text."""
    message = choice.message
    refusal = getattr(message, "refusal", None)
    if refusal:
        raise ParseError("refusal", str(refusal))
    content = getattr(message, "content", None)
    if not isinstance(content, str):
        raise ParseError("malformed", f"message content is {type(content).__name__}, not text")
    return content


def tokens_from_choice(choice: Any) -> list[TokenLogprobs]:
    """The OpenAI ``choice.logprobs.content`` list as TokenLogprobs.

    Empty when absent or malformed (a token that is not text would shift every later offset): the
    sampled integers then count, as without logprobs. Malformed alternatives are skipped.
    """
    content = getattr(getattr(choice, "logprobs", None), "content", None)
    if not isinstance(content, list):
        return []
    tokens = []
    for entry in content:
        token = getattr(entry, "token", None)
        if not isinstance(token, str):
            return []
        tokens.append(TokenLogprobs(token=token, top=_alternatives(getattr(entry, "top_logprobs", None))))
    return tokens


def _alternatives(top: Any) -> tuple[tuple[str, float], ...]:
    if not isinstance(top, list):
        return ()
    pairs = ((getattr(t, "token", None), getattr(t, "logprob", None)) for t in top)
    return tuple(
        (token, float(logprob))
        for token, logprob in pairs
        if isinstance(token, str) and isinstance(logprob, int | float) and not isinstance(logprob, bool)
    )


def _expectation(top: Sequence[tuple[str, float]], low: int, high: int) -> float | None:
    mass: dict[int, float] = {}
    for token, logprob in top:
        digits = token.strip()
        if digits.isdigit() and low <= int(digits) <= high and math.isfinite(logprob):
            mass[int(digits)] = mass.get(int(digits), 0.0) + math.exp(logprob)
    total = sum(mass.values())
    return sum(d * p for d, p in mass.items()) / total if total > 0 else None


def _token_at(starts: Sequence[int], offset: int) -> int:
    index = 0
    for i, start in enumerate(starts):
        if start > offset:
            break
        index = i
    return index


def _json_object(text: str) -> dict[str, Any] | None:
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        data = json.loads(text[start : end + 1])
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def _regex_value(text: str, key: str) -> str | None:
    match = re.search(rf'"{re.escape(key)}"\s*:\s*"?(\d+(?:\.\d+)?)', text)
    return match.group(1) if match else None


def _score(value: Any, low: int, high: int) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number) or number != int(number) or not low <= number <= high:
        return None
    return int(number)
