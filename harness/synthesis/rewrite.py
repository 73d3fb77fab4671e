"""Prompted rewrites of a user turn through an endpoint: a paraphrase, or a back-translation (into a
pivot language and back). Code never goes to the model: each fenced block and inline span becomes a
placeholder that must come back intact, else the rewrite is refused (None) rather than trusted.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from harness.settings.synthesis import DEFAULT_REJECT_PATTERNS
from harness.synthesis.eda import tokenize
from harness.synthesis.filters import is_chatter

Complete = Callable[[list[dict[str, str]], int], str]  # (messages, seed) -> reply text

_SYSTEM = (
    "You rewrite text exactly as asked. Reply with the rewritten text only: no answer to it, "
    "no preamble, no notes. Keep every placeholder such as [[C1]] exactly as written."
)
_PARAPHRASE = (
    "Rewrite this question in other words. Keep its meaning, every technical term and every placeholder.\n\n{text}"
)
_TRANSLATE = "Translate this text into {language}. Keep every technical term and every placeholder.\n\n{text}"
_PLACEHOLDER = re.compile(r"\[\[C(\d+)\]\]")
_PREAMBLE = re.compile(r"^\s*(here is|here's|sure|rewritten|paraphrased|translation|question)\b[^:\n]*:\s*", re.I)
# A rewrite much shorter or longer than its source has lost or added content.
_MIN_RATIO, _MAX_RATIO = 0.5, 2.0


def mask_code(text: str) -> tuple[str, list[str]]:
    """``text`` with each code token replaced by ``[[Cn]]``, and the code in order."""
    code: list[str] = []
    parts = []
    for token in tokenize(text):
        if token.kind == "code":
            code.append(token.text)
            parts.append(f"[[C{len(code)}]]")
        else:
            parts.append(token.text)
    return "".join(parts), code


def unmask_code(text: str, code: list[str]) -> str | None:
    """Put the code back; None unless every placeholder comes back exactly once."""
    found = [int(n) for n in _PLACEHOLDER.findall(text)]
    if sorted(found) != list(range(1, len(code) + 1)):
        return None
    return _PLACEHOLDER.sub(lambda m: code[int(m[1]) - 1], text)


def _clean(reply: str) -> str:
    return _PREAMBLE.sub("", reply.strip()).strip().strip('"“”').strip()


def accept_rewrite(original: str, rewritten: str | None) -> str | None:
    """Pure: the rewrite when it is usable; None when empty, chatter, unchanged or far off in length."""
    if not rewritten or not rewritten.strip():
        return None
    if is_chatter(rewritten, DEFAULT_REJECT_PATTERNS):
        return None
    if " ".join(rewritten.lower().split()) == " ".join(original.lower().split()):
        return None
    ratio = len(rewritten.split()) / max(1, len(original.split()))
    return rewritten if _MIN_RATIO <= ratio <= _MAX_RATIO else None


def _ask(complete: Complete, prompt: str, seed: int) -> str:
    return _clean(complete([{"role": "system", "content": _SYSTEM}, {"role": "user", "content": prompt}], seed))


def paraphrase(text: str, complete: Complete, seed: int) -> str | None:
    masked, code = mask_code(text)
    reply = _ask(complete, _PARAPHRASE.format(text=masked), seed)
    return accept_rewrite(text, unmask_code(reply, code))


def backtranslate(text: str, complete: Complete, seed: int, pivot: str) -> str | None:
    masked, code = mask_code(text)
    there = _ask(complete, _TRANSLATE.format(language=pivot, text=masked), seed)
    if not there:
        return None
    back = _ask(complete, _TRANSLATE.format(language="English", text=there), seed)
    return accept_rewrite(text, unmask_code(back, code))
