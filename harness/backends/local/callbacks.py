"""Trainer callbacks: stream curves to the trial's metric sink and report eval loss for pruning."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from transformers import TrainerCallback

# Trainer log keys -> MLflow metric names (the loss curves and their companions).
STEP_METRICS = {
    "loss": "train_loss",
    "eval_loss": "eval_loss",
    "learning_rate": "learning_rate",
    "grad_norm": "grad_norm",
    "epoch": "epoch",
}
SUMMARY_METRICS = {
    "train_loss": "train_loss_mean",
    "train_runtime": "train_runtime_s",
    "train_samples_per_second": "train_samples_per_second",
}


class MetricsCallback(TrainerCallback):
    """Maps Trainer logs to metrics with steps, adding trained tokens per second between logs."""

    def __init__(
        self, sink: Callable[[Mapping[str, float], int], None], step_metrics: Mapping[str, str] = STEP_METRICS
    ):
        self.sink = sink
        # Trainer log keys -> metric names; MLflow takes "/" in names, so TRL's "rewards/margins" stays as it is.
        self.step_metrics = step_metrics
        self._last_time: float | None = None
        self._last_tokens = 0
        self.tokens_per_second: list[float] = []

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._last_time = time.perf_counter()
        self._last_tokens = state.num_input_tokens_seen

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        logs = logs or {}
        # Every step log carries running speed metrics; only the end-of-training one has total_flos.
        names = SUMMARY_METRICS if "total_flos" in logs else self.step_metrics
        metrics = {names[k]: float(v) for k, v in logs.items() if k in names and v is not None}
        if "loss" in logs and self._last_time is not None:
            now = time.perf_counter()
            tokens = state.num_input_tokens_seen - self._last_tokens
            if now > self._last_time and tokens > 0:
                rate = tokens / (now - self._last_time)
                metrics["tokens_per_second"] = rate
                self.tokens_per_second.append(rate)
            self._last_time, self._last_tokens = now, state.num_input_tokens_seen
        if metrics:
            self.sink(metrics, state.global_step)

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # Logs precede evals at the same step, so restarting the clock keeps evals out of the rate.
        self._last_time = time.perf_counter()

    on_save = on_evaluate


class PruningCallback(TrainerCallback):
    """Reports each periodic eval loss; the reporter raises optuna.TrialPruned to stop training."""

    def __init__(self, report: Callable[[float, int], None]):
        self.report = report
        self.enabled = True

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Any = None, **kwargs: Any) -> None:
        if self.enabled and metrics and "eval_loss" in metrics:
            self.report(float(metrics["eval_loss"]), state.global_step)


class RichProgressCallback(TrainerCallback):
    """The trial's training bar, drawn in the study's rich Progress instead of a tqdm bar."""

    def __init__(self, progress: Any, description: str):
        self.progress = progress
        self.description = description
        self.task: Any = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.task = self.progress.add_task(self.description, total=state.max_steps)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=state.global_step)

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        if self.task is not None and logs and "loss" in logs:
            text = f"{self.description} loss {logs['loss']:.3f}"
            self.progress.update(self.task, description=text)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None
