"""EDA (Wei & Zou 2019, seed 001's fifth round): synonym replacement, random insertion, random swap
and random deletion on the words of a text, never inside code.

A text is cut into tokens first: fenced code blocks and inline code spans are single code tokens;
whitespace is kept as it is (line breaks included); a word is editable only when it is plain
letters (with trailing punctuation, which stays where it is). Anything else (``list.sort()``,
``[::-1]``, ``--force``, paths, numbers) is protected. Operations move, drop or replace editable
words only, so code reaches every copy byte for byte. Pure: the randomness is a ``random.Random``
the caller seeds, and synonyms come from a function the caller passes.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Synonyms = Callable[[str], Sequence[str]]
OPERATIONS: tuple[str, ...] = ("synonym", "insert", "swap", "delete")

# A fenced block runs from its opening fence line to a closing fence of the same kind, or to the end
# of the text when unclosed (as markdown renders it); found first, over the whole text.
_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[^\n]*(?:\n.*?(?:^[ \t]*\1[ \t]*$|\Z)|\Z)", re.MULTILINE | re.DOTALL)
_TOKEN = re.compile(r"(?P<code>(?P<b>`+)(?:(?!(?P=b))[^\n])+(?P=b))|(?P<space>\s+)|(?P<other>\S+)")
_WORD = re.compile(r"^(?P<core>[A-Za-z]+(?:'[A-Za-z]+)?)(?P<tail>[.,;:!?]*)$")
# Function words: replacing or inserting one adds noise and no variety (the EDA paper skips them).
_STOPWORD_TEXT = """
a about above after again against all am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have
having he her here hers herself him himself his how i if in into is it its itself just me more most
my myself no nor not now of off on once only or other our ours ourselves out over own same she
should so some such than that the their theirs them themselves then there these they this those
through to too under until up very was we were what when where which while who whom why will with
would you your yours yourself yourselves
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


@dataclass(frozen=True)
class Token:
    text: str
    kind: str  # word (editable) | code (fenced block, inline span) | other (kept as is) | space

    @property
    def core(self) -> str:
        match = _WORD.match(self.text)
        return match["core"] if match else ""

    @property
    def tail(self) -> str:
        match = _WORD.match(self.text)
        return match["tail"] if match else ""

    def with_core(self, core: str) -> Token:
        return Token(core + self.tail, "word")


def _prose_tokens(text: str) -> list[Token]:
    tokens = []
    for match in _TOKEN.finditer(text):
        if match["code"] is not None:
            tokens.append(Token(match[0], "code"))
        elif match["space"] is not None:
            tokens.append(Token(match[0], "space"))
        else:
            tokens.append(Token(match[0], "word" if _WORD.match(match[0]) else "other"))
    return tokens


def tokenize(text: str) -> list[Token]:
    """Tokens whose texts join back to ``text`` exactly."""
    tokens: list[Token] = []
    at = 0
    for fence in _FENCE.finditer(text):
        tokens += _prose_tokens(text[at : fence.start()])
        tokens.append(Token(fence[0], "code"))
        at = fence.end()
    return tokens + _prose_tokens(text[at:])


def join(tokens: Sequence[Token]) -> str:
    return "".join(t.text for t in tokens)


def _words(tokens: Sequence[Token]) -> list[int]:
    return [i for i, t in enumerate(tokens) if t.kind == "word"]


def _replaceable(tokens: Sequence[Token]) -> list[int]:
    """Lower-case content words: names (Python, Linux) and function words keep their meaning."""
    return [i for i in _words(tokens) if tokens[i].core.islower() and tokens[i].core not in STOPWORDS]


def synonym_replacement(tokens: list[Token], n: int, rng: random.Random, synonyms: Synonyms) -> list[Token]:
    out = list(tokens)
    candidates = _replaceable(out)
    rng.shuffle(candidates)
    replaced = 0
    for i in candidates:
        options = [s for s in synonyms(out[i].core) if s != out[i].core]
        if options and replaced < n:
            out[i] = out[i].with_core(rng.choice(options))
            replaced += 1
    return out


def random_insertion(tokens: list[Token], n: int, rng: random.Random, synonyms: Synonyms) -> list[Token]:
    """A synonym of a random content word, inserted before a random word (never inside code)."""
    out = list(tokens)
    for _ in range(n):
        sources = [i for i in _replaceable(out) if synonyms(out[i].core)]
        if not sources:
            break
        word = rng.choice(list(synonyms(out[rng.choice(sources)].core)))
        at = rng.choice(_words(out))
        out[at:at] = [Token(word, "word"), Token(" ", "space")]
    return out


def random_swap(tokens: list[Token], n: int, rng: random.Random) -> list[Token]:
    """Two words trade places; each keeps the punctuation of the place it moves to."""
    out = list(tokens)
    positions = _words(out)
    if len(positions) < 2:
        return out
    for _ in range(n):
        i, j = rng.sample(positions, 2)
        out[i], out[j] = out[i].with_core(out[j].core), out[j].with_core(out[i].core)
    return out


def random_deletion(tokens: list[Token], p: float, rng: random.Random) -> list[Token]:
    """Each bare word (no punctuation attached) goes with probability ``p``; at least one goes when
    any can, and never every word."""
    bare = [i for i in _words(tokens) if not tokens[i].tail]
    if len(_words(tokens)) < 2 or not bare:
        return list(tokens)
    drop = {i for i in bare if rng.random() < p} or {rng.choice(bare)}
    if len(drop) >= len(_words(tokens)):
        drop = set(sorted(drop)[:-1])
    out: list[Token] = []
    skip_space = False
    for i, token in enumerate(tokens):
        if i in drop:
            # Take one neighbouring space with the word (the one before, else the one after),
            # never a line break.
            if out and out[-1].kind == "space" and "\n" not in out[-1].text:
                out.pop()
            else:
                skip_space = True
            continue
        if skip_space and token.kind == "space" and "\n" not in token.text:
            skip_space = False
            continue
        skip_space = False
        out.append(token)
    return out


def augment_text(text: str, operation: str, alpha: float, rng: random.Random, synonyms: Synonyms) -> str:
    """``text`` after one EDA operation changing about ``alpha`` of its editable words."""
    tokens = tokenize(text)
    n = max(1, int(alpha * len(_words(tokens))))
    if operation == "synonym":
        changed = synonym_replacement(tokens, n, rng, synonyms)
    elif operation == "insert":
        changed = random_insertion(tokens, n, rng, synonyms)
    elif operation == "swap":
        changed = random_swap(tokens, n, rng)
    elif operation == "delete":
        changed = random_deletion(tokens, alpha, rng)
    else:
        raise ValueError(f"unknown EDA operation {operation!r}; expected one of {OPERATIONS}")
    return join(changed)


def code_spans(text: str) -> list[str]:
    """The code a text holds (fenced blocks and inline spans), in order: what EDA must keep."""
    return [t.text for t in tokenize(text) if t.kind == "code"]
