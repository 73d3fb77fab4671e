"""Training backends behind one small Protocol (harness.backends.protocol.Backend)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.backends.protocol import Backend
    from harness.config import StudyConfig


def create(config: StudyConfig) -> Backend:
    """The backend a config names; heavy imports happen only for the one chosen."""
    if config.backend == "local":
        from harness.backends.local.backend import LocalBackend

        if config.training.method == "dpo":
            from harness.backends.local.dpo import DPO

            return LocalBackend(config, DPO(config))
        return LocalBackend(config)  # supervised fine-tuning (harness.backends.local.sft.SFT)
    from harness.backends.openai.backend import OpenAIBackend

    return OpenAIBackend(config)
