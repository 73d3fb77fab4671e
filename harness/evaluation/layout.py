"""Layout scorers: how closely an answer's markdown layout and size follow its reference's.

An answer is parsed into layout blocks (paragraphs, label lines, fenced code, lists, headings, tables, quotes).
`structure` compares the block sequences and `detail` compares sizes. Nothing about a house style is built in:
labels, code languages and heading levels are read from whatever the reference text contains.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Block:
    """One layout block: its kind, a label (code language, label text, heading level) and its size."""

    kind: str
    label: str = ""
    size: int = 0  # code lines, list items or table rows; lines for prose blocks
    words: int = 0  # prose words; code is counted in lines only


_FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([\w+#.-]*)")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*)$")
_BULLET = re.compile(r"^\s*[-*+]\s+")
_NUMBER = re.compile(r"^\s*\d{1,3}[.)]\s+")
_QUOTE = re.compile(r"^\s{0,3}>")
_TABLE = re.compile(r"^\s*\|")
_TABLE_RULE = re.compile(r"^[\s|:-]*-[\s|:-]*$")
_RULE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")
_BOLD_LABEL = re.compile(r"^\s*(\*\*|__)(?P<label>[^*\n]{1,60}?)(?::\s*\1|\1\s*:)(?P<rest>.*)$")
_BOLD_LINE = re.compile(r"^\s*(\*\*|__)(?P<label>[^*\n]{1,60})\1\s*$")
_PLAIN_LABEL = re.compile(r"^\s*(?P<label>[A-Z][\w '()/-]{0,40}):(?P<rest>(\s.*)?)$")
_WORD = re.compile(r"\w+")

# A plain "Word:" line is only a label when short; longer lines ending in a colon are prose.
_PLAIN_LABEL_WORDS = 4
_PLAIN_LABEL_WORDS_WITH_TEXT = 2

# Same kind with another label (python vs bash code, "example" vs "tip") is a near miss, not a different block.
_RELABEL_COST = 0.5

_DETAIL_WEIGHTS = {
    "prose_words": 3.0,  # length is what a reader notices first
    "code_lines": 1.0,
    "code_blocks": 1.0,
    "list_items": 1.0,
    "table_rows": 1.0,
    "blocks": 1.0,
}


def _words(text: str) -> int:
    return len(_WORD.findall(text))


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _normalise_label(label: str) -> str:
    # Digits go too, so "Step 1" and "Step 2" are the same label; apostrophes join ("here's" -> "heres").
    return re.sub(r"[\W\d_]+", " ", re.sub(r"['’]", "", label.lower())).strip()


def _label_match(line: str) -> tuple[str, str] | None:
    """(label, trailing text) when the line is a label line such as `**Tip:** text` or `Steps:`."""
    match = _BOLD_LABEL.match(line) or _BOLD_LINE.match(line)
    if match:
        rest = match.groupdict().get("rest") or ""
        return _normalise_label(match["label"]), rest.strip()
    match = _PLAIN_LABEL.match(line)
    if not match:
        return None
    rest = match["rest"].strip()
    limit = _PLAIN_LABEL_WORDS_WITH_TEXT if rest else _PLAIN_LABEL_WORDS
    return (_normalise_label(match["label"]), rest) if len(match["label"].split()) <= limit else None


def _starts_block(line: str) -> bool:
    patterns = (_FENCE, _HEADING, _RULE, _BULLET, _NUMBER, _QUOTE, _TABLE)
    return any(p.match(line) for p in patterns) or _label_match(line) is not None


def _prose_end(lines: list[str], i: int) -> int:
    """Index after the lines that continue a prose block starting before `i`."""
    while i < len(lines) and lines[i].strip() and not _starts_block(lines[i]):
        i += 1
    return i


def _code(lines: list[str], i: int) -> tuple[Block, int]:
    opener = _FENCE.match(lines[i])
    assert opener is not None
    fence, language = opener.group(1), opener.group(2).lower()
    closer = re.compile(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
    end = i + 1
    # An unclosed fence runs to the end of the text, as markdown renderers show it.
    while end < len(lines) and not closer.match(lines[end]):
        end += 1
    return Block("code", language, size=end - i - 1), end + 1


def _after_blank(lines: list[str], i: int, base: int, pattern: re.Pattern[str]) -> int | None:
    """Where a list goes on after the blank line at `i` (a loose list), or None when the blank ends it."""
    nxt = next((j for j in range(i, len(lines)) if lines[j].strip()), len(lines))
    if nxt == len(lines) or _FENCE.match(lines[nxt]):
        return None
    return nxt if pattern.match(lines[nxt]) or _indent(lines[nxt]) > base else None


def _ends_list(line: str, base: int, pattern: re.Pattern[str]) -> bool:
    # Deeper lines are nested items or continuations; a fence always ends the list so its code is seen.
    if _FENCE.match(line):
        return True
    if _indent(line) > base:
        return False
    is_item = bool(_BULLET.match(line) or _NUMBER.match(line))
    return not pattern.match(line) if is_item else _starts_block(line)


def _list(lines: list[str], i: int, pattern: re.Pattern[str]) -> tuple[Block, int]:
    """A run of list items of one marker kind; nested items count as items too."""
    base, items, words = _indent(lines[i]), 0, 0
    while i < len(lines):
        if not lines[i].strip():
            nxt = _after_blank(lines, i, base, pattern)
            if nxt is None:
                break
            i = nxt
        if _ends_list(lines[i], base, pattern):
            break
        stripped = _NUMBER.sub("", _BULLET.sub("", lines[i], count=1), count=1)
        items += stripped != lines[i]
        words += _words(stripped)
        i += 1
    return Block("numbers" if pattern is _NUMBER else "bullets", size=items, words=words), i


def _run(lines: list[str], i: int, pattern: re.Pattern[str], kind: str) -> tuple[Block, int]:
    """A table or block quote: consecutive lines matching `pattern`."""
    end = i
    while end < len(lines) and pattern.match(lines[end]):
        end += 1
    body = [line for line in lines[i:end] if not (kind == "table" and _TABLE_RULE.match(line))]
    return Block(kind, size=len(body), words=sum(_words(line) for line in body)), end


def _prose(lines: list[str], i: int) -> tuple[Block, int]:
    label = _label_match(lines[i])
    if label is not None and not label[1]:
        return Block("label", label[0], size=1), i + 1
    end = _prose_end(lines, i + 1)
    words = sum(_words(line) for line in lines[i + 1 : end])
    if label is not None:
        return Block("label", label[0], size=end - i, words=_words(label[1]) + words), end
    return Block("paragraph", size=end - i, words=_words(lines[i]) + words), end


def _next_block(lines: list[str], i: int) -> tuple[Block | None, int]:
    line = lines[i]
    if not line.strip() or _RULE.match(line):
        return None, i + 1
    if _FENCE.match(line):
        return _code(lines, i)
    heading = _HEADING.match(line)
    if heading:
        return Block("heading", f"h{len(heading.group(1))}", size=1, words=_words(heading.group(2))), i + 1
    for pattern in (_BULLET, _NUMBER):
        if pattern.match(line):
            return _list(lines, i, pattern)
    if _TABLE.match(line):
        return _run(lines, i, _TABLE, "table")
    if _QUOTE.match(line):
        return _run(lines, i, _QUOTE, "quote")
    return _prose(lines, i)


def blocks(text: str) -> list[Block]:
    """The layout blocks of a markdown text, in order; a leading paragraph is labelled "opening"."""
    lines = text.splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        block, i = _next_block(lines, i)
        if block is not None:
            found.append(block)
    if found and found[0].kind == "paragraph":
        found[0] = replace(found[0], label="opening")
    return found


def _substitution_cost(a: Block, b: Block) -> float:
    if a.kind != b.kind:
        return 1.0
    return 0.0 if a.label == b.label else _RELABEL_COST


def _edit_distance(a: Sequence[Block], b: Sequence[Block]) -> float:
    previous = [float(j) for j in range(len(b) + 1)]
    for i, block_a in enumerate(a, start=1):
        current = [float(i)]
        for j, block_b in enumerate(b, start=1):
            substitute = previous[j - 1] + _substitution_cost(block_a, block_b)
            current.append(min(previous[j] + 1.0, current[j - 1] + 1.0, substitute))
        previous = current
    return previous[-1]


def _layout_similarity(answer: Sequence[Block], reference: Sequence[Block]) -> float:
    longest = max(len(answer), len(reference))
    return 1.0 if longest == 0 else 1.0 - _edit_distance(answer, reference) / longest


def structure(answers: Sequence[str], references: Sequence[str]) -> list[float]:
    """How closely each answer's block sequence follows its reference's, in [0, 1]."""
    _same_length(answers, references)
    return [_layout_similarity(blocks(a), blocks(r)) for a, r in zip(answers, references, strict=True)]


def _features(found: Sequence[Block]) -> dict[str, int]:
    code = [b for b in found if b.kind == "code"]
    return {
        "prose_words": sum(b.words for b in found),
        "code_lines": sum(b.size for b in code),
        "code_blocks": len(code),
        "list_items": sum(b.size for b in found if b.kind in ("bullets", "numbers")),
        "table_rows": sum(b.size for b in found if b.kind == "table"),
        "blocks": len(found),
    }


def _size_similarity(answer: dict[str, int], reference: dict[str, int]) -> float:
    # A feature neither side has says nothing, so it is left out rather than counted as a match.
    present = [name for name in _DETAIL_WEIGHTS if answer[name] or reference[name]]
    if not present:
        return 1.0
    total = sum(_DETAIL_WEIGHTS[name] for name in present)
    ratios = (min(answer[n], reference[n]) / max(answer[n], reference[n]) for n in present)
    return sum(_DETAIL_WEIGHTS[n] * r for n, r in zip(present, ratios, strict=True)) / total


def detail(answers: Sequence[str], references: Sequence[str]) -> list[float]:
    """How close each answer's length and depth (prose, code, lists, blocks) are to its reference's, in [0, 1]."""
    _same_length(answers, references)
    return [
        _size_similarity(_features(blocks(a)), _features(blocks(r))) for a, r in zip(answers, references, strict=True)
    ]


def _same_length(answers: Sequence[str], references: Sequence[str]) -> None:
    if len(answers) != len(references):
        raise ValueError(f"{len(answers)} answers but {len(references)} references")
