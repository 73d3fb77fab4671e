"""A local trial's checkpoints (``evaluation.during_training``).

At each epoch's end (or every N optimizer steps, and at the last) the Trainer evaluates its eval
loss, then the study measures the objective on the model as it is in memory (``TrialContext.checkpoint``:
answers, scores, the curve, the pruner). With ``training.keep: best`` the trainable weights of the
best checkpoint so far are copied aside (LoRA: the adapters; full: every weight) and put back when
training ends, so the trial's result, saved weights and final evaluation are that checkpoint's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from transformers import TrainerCallback

from harness.answering import Answerer
from harness.backends.protocol import Checkpoint
from harness.metrics import CHECKPOINT_COST_RATIO, CHECKPOINT_EVAL_SECONDS_MEAN, EPOCH_TRAIN_SECONDS_MEAN


@dataclass(frozen=True)
class Measured:
    """One checkpoint as measured: where it was and how good (higher is better)."""

    number: int
    step: int
    epoch: float
    merit: float


def trainable_weights(model: Any) -> dict[str, torch.Tensor]:
    """A copy of every weight training changes (what a checkpoint of this trial is)."""
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def load_weights(model: Any, weights: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)


class CheckpointCallback(TrainerCallback):
    """Asks the Trainer for an evaluation at each checkpoint, then has the study measure it."""

    def __init__(
        self,
        measure: Callable[[Checkpoint], float],
        answer: Answerer,
        model: Any,
        every_steps: int | None = None,
        keep_best: bool = True,
    ) -> None:
        self.measure = measure
        self.answer = answer
        self.model = model
        self.every_steps = every_steps
        self.keep_best = keep_best
        self.measured: list[Measured] = []
        self.best: Measured | None = None
        self.seconds: list[float] = []  # per checkpoint: eval loss aside, answering and scoring
        self.epoch_seconds: list[float] = []  # per epoch: training, checkpoints at its end excluded
        self._weights: dict[str, torch.Tensor] | None = None
        self._due = False
        self._epoch_started: float | None = None

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._epoch_started = time.perf_counter()

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._epoch_started is not None:
            self.epoch_seconds.append(time.perf_counter() - self._epoch_started)
        if self.every_steps is None:
            self._ask(control)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        last = state.global_step >= state.max_steps  # the end of training is always a checkpoint
        if self.every_steps is not None and (state.global_step % self.every_steps == 0 or last):
            self._ask(control)

    def _ask(self, control: Any) -> None:
        self._due = True
        control.should_evaluate = True  # the Trainer evaluates next, then calls on_evaluate

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Any = None, **kwargs: Any) -> None:
        if not self._due:
            return  # one of the periodic eval-loss evaluations
        self._due = False
        number, started = len(self.measured) + 1, time.perf_counter()
        loss = {"eval_loss": float(metrics["eval_loss"])} if metrics and "eval_loss" in metrics else {}
        epoch = float(state.epoch or 0.0)
        # May raise optuna.TrialPruned: training stops here, the curve so far is on the run.
        last = state.global_step >= state.max_steps
        merit = self.measure(Checkpoint(number, state.global_step, epoch, self.answer, loss, last))
        self.seconds.append(time.perf_counter() - started)
        point = Measured(number, state.global_step, epoch, merit)
        self.measured.append(point)
        if self.best is None or merit > self.best.merit:  # ties keep the earlier, shorter-trained one
            self.best = point
            if self.keep_best:
                self._weights = trainable_weights(self.model)

    def restore_best(self) -> Measured | None:
        """Put the best checkpoint's weights back (keep: best); the checkpoint the trial keeps."""
        if not self.keep_best:
            return self.measured[-1] if self.measured else None
        if self.best is not None and self._weights is not None and self.best is not self.measured[-1]:
            load_weights(self.model, self._weights)
        self._weights = None
        return self.best

    def facts(self, kept: Measured | None) -> dict[str, Any]:
        """Params of the trial: the checkpoint it kept, and its best one (the same with keep: best)."""
        if kept is None or self.best is None:
            return {}
        return {
            "keep": "best" if self.keep_best else "last",
            "best_epoch": round(self.best.epoch, 4),
            "best_step": self.best.step,
            "kept_epoch": round(kept.epoch, 4),
            "checkpoints": len(self.measured),
        }

    def cost(self) -> dict[str, float]:
        """Seconds per checkpoint and per epoch of training, and their ratio (the price of measuring)."""
        if not self.seconds or not self.epoch_seconds:
            return {}
        checkpoint = sum(self.seconds) / len(self.seconds)
        epoch = sum(self.epoch_seconds) / len(self.epoch_seconds)
        return {
            CHECKPOINT_EVAL_SECONDS_MEAN: checkpoint,
            EPOCH_TRAIN_SECONDS_MEAN: epoch,
            CHECKPOINT_COST_RATIO: checkpoint / epoch if epoch else 0.0,
        }
