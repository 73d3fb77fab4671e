"""keep: best puts the best checkpoint's trainable weights back; keep: last leaves the last."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch

from harness.backends.local.checkpoint_eval import CheckpointCallback
from harness.backends.protocol import Checkpoint


def trained_through(merits: list[float], keep_best: bool) -> tuple[torch.nn.Module, CheckpointCallback, list[Any]]:
    """A model whose trainable weight is the checkpoint's number at each checkpoint."""
    model = torch.nn.Linear(2, 1)
    model.bias.requires_grad_(False)  # frozen: a checkpoint is the trainable weights only
    seen: list[Checkpoint] = []
    pending = iter(merits)

    def measure(checkpoint: Checkpoint) -> float:
        seen.append(checkpoint)
        return next(pending)

    callback = CheckpointCallback(
        measure, answer=lambda prompts, max_new_tokens=None: [], model=model, keep_best=keep_best
    )
    control = SimpleNamespace(should_evaluate=False)
    for epoch, _ in enumerate(merits, start=1):
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        state = SimpleNamespace(global_step=3 * epoch, epoch=float(epoch), max_steps=3 * len(merits))
        callback.on_epoch_begin(None, state, control)
        callback.on_epoch_end(None, state, control)
        assert control.should_evaluate  # the Trainer evaluates the loss next, then the study measures
        callback.on_evaluate(None, state, control, metrics={"eval_loss": 1.0 / epoch})
        callback.on_evaluate(None, state, control, metrics={"eval_loss": 9.0})  # a periodic eval: not a checkpoint
    return model, callback, seen


def test_keep_best_restores_the_best_checkpoints_weights() -> None:
    model, callback, seen = trained_through([0.2, 0.7, 0.7, 0.4], keep_best=True)
    assert [(c.number, c.step, c.epoch, c.metrics["eval_loss"]) for c in seen] == [
        (n, 3 * n, float(n), 1.0 / n) for n in (1, 2, 3, 4)
    ]
    kept = callback.restore_best()
    assert kept is not None and kept.number == 2  # a tie keeps the earlier checkpoint
    assert torch.equal(model.weight, torch.full((1, 2), 2.0))
    assert callback.facts(kept) == {
        "keep": "best",
        "best_epoch": 2.0,
        "best_step": 6,
        "kept_epoch": 2.0,
        "checkpoints": 4,
    }


def test_keep_last_leaves_the_last_weights() -> None:
    model, callback, _ = trained_through([0.2, 0.7, 0.4], keep_best=False)
    kept = callback.restore_best()
    assert kept is not None and kept.number == 3 and torch.equal(model.weight, torch.full((1, 2), 3.0))
    assert callback.facts(kept)["best_epoch"] == 2.0 and callback.facts(kept)["kept_epoch"] == 3.0
    assert set(callback.cost()) == {"checkpoint_eval_seconds_mean", "epoch_train_seconds_mean", "checkpoint_cost_ratio"}
