"""A local study's training set per ``search_space.augmentation`` value, tokenized on first use.

The split has already happened (``harness.data.split.load_splits``): only the training part is
augmented, the validation set never. The augmented examples come from
``harness.synthesis.augment.cached_augmentation`` (built once per training content, method and
settings, kept under the harness cache dir), and each method is tokenized once per process.
"""

from __future__ import annotations

from typing import Any

from harness import models
from harness.config import LocalStudyConfig
from harness.data.chat import Example
from harness.data.tokenize import TokenizedSet, tokenize_all
from harness.synthesis.augment import cached_augmentation, check_rewrites

NONE = "none"


class AugmentedSets:
    def __init__(self, config: LocalStudyConfig, originals: list[Example], base: TokenizedSet) -> None:
        self.config = config
        self.originals = originals
        self._sets: dict[str, tuple[TokenizedSet, dict[str, Any]]] = {NONE: (base, {})}
        augmentations = config.search_space.choices("augmentation")
        check_rewrites(originals, augmentations, config.data.augment, models.cache_root(), "data.augment.endpoint")

    def get(self, method: str | None) -> tuple[TokenizedSet, dict[str, Any]]:
        """The tokenized training set for ``method`` and what a trial logs about it."""
        method = method or NONE
        if method not in self._sets:
            self._sets[method] = self._build(method)
        return self._sets[method]

    def _build(self, method: str) -> tuple[TokenizedSet, dict[str, Any]]:
        settings = self.config.data.augment
        base = self._sets[NONE][0]
        examples, path, _ = cached_augmentation(self.originals, method, settings, models.cache_root())
        copies = examples[len(self.originals) :]
        # Originals passed the study's too_long policy already; a copy that grew past the limit is
        # dropped rather than failing the trial.
        policy = self.config.data.too_long
        kept = (
            tokenize_all(
                models.load_tokenizer(self.config.base_model),
                copies,
                self.config.max_seq_length,
                "drop" if policy == "error" else policy,
            )
            if copies
            else TokenizedSet([], [])
        )
        tokenized = TokenizedSet([*base.examples, *kept.examples], [*base.dropped, *kept.dropped])
        facts = {
            "augmentation_factor": settings.factor,
            "augmentation_seed": settings.seed,
            "augmentation_cache": path.stem,  # <method>-<digest of content, method and settings>
            "n_train_augmented": len(tokenized.examples),
        }
        return tokenized, facts
