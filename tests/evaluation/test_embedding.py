from __future__ import annotations

import pytest

from harness.evaluation.embedding import load_embedder, packaged_model_dir


def test_packaged_model_directory_exists() -> None:
    assert (packaged_model_dir() / "config.json").exists()


def test_similarities_rank_related_pairs_higher() -> None:
    embedder = load_embedder()
    assert load_embedder() is embedder  # loaded once per process
    scores = embedder.similarities(
        [
            "Use enumerate() to get both index and value while looping over a list.",
            "Use enumerate() to get both index and value while looping over a list.",
            "Bake the bread at 220 degrees for forty minutes.",
        ],
        [
            "Use enumerate() to get both index and value while looping over a list.",
            "enumerate yields (index, item) pairs, so you avoid range(len(...)).",
            "enumerate yields (index, item) pairs, so you avoid range(len(...)).",
        ],
    )
    assert scores[0] == pytest.approx(1.0, abs=1e-4)
    assert scores[1] > scores[2] + 0.2
    assert all(-1.0 <= s <= 1.0 + 1e-6 for s in scores)
    assert embedder.similarities([], []) == []
    with pytest.raises(ValueError):
        embedder.similarities(["a"], [])
