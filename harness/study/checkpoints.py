"""A trial's checkpoints measured on the objective (``evaluation.during_training``): the objective's
curve on its run (same metric names, step = the training step), the pruner's decision, and the
value the backend keeps its best checkpoint by."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import optuna

from harness import metrics
from harness.backends.protocol import Checkpoint
from harness.config import StudyConfig
from harness.evaluation.checkpoint_scores import CheckpointScorer
from harness.evaluation.task import PER_EXAMPLE_COLUMN
from harness.objective import objective_value
from harness.study.pruning import prompt_positions, prune_reason, report_checkpoint
from harness.tracking import MetricBuffer

log = logging.getLogger(__name__)

# The trial's user attr: epochs trained when it was last measured (a pruned trial's stop).
ATTR_TRAINED_EPOCHS = "harness.trained_epochs"
# ... and the epoch of the checkpoint a complete trial kept (training.keep), also its run's param best_epoch.
ATTR_BEST_EPOCH = "harness.best_epoch"
EVAL_LOSS = "eval_loss"  # logged by the training curves already


@dataclass
class CheckpointHook:
    """``TrialContext.checkpoint`` of one trial: measure, log, report; prune or say how good it is."""

    trial: optuna.Trial
    config: StudyConfig
    scorer: CheckpointScorer | None
    log_metrics: Callable[[Mapping[str, float], int], None]
    # Sends what log_metrics queued: a checkpoint's points go out at once, so a worker killed later
    # (mid-way through the next checkpoint, say) leaves the curve so far on its run.
    flush: Callable[[], None] = lambda: None
    positions: list[int] = field(default_factory=list)
    # False for a confirmation repeat: measured (keep: best reads it) but never reported or pruned.
    prunable: bool = True

    def __post_init__(self) -> None:
        if self.scorer is not None:
            self.positions = prompt_positions(len(self.scorer.examples), self.config.evaluation.during_training.seed)

    def __call__(self, checkpoint: Checkpoint) -> float:
        started = time.perf_counter()
        measured, per_prompt = self.measure(checkpoint)
        objective = self.config.objective
        values = objective_value(objective, measured)
        if isinstance(values, list):  # config load refuses during_training for multi-objective studies
            raise RuntimeError("a multi-objective study cannot be measured at checkpoints")
        value = float(values)
        curve = {k: v for k, v in measured.items() if k != EVAL_LOSS}
        seconds = time.perf_counter() - started
        self.log_metrics(
            {**curve, metrics.objective_key(): value, metrics.CHECKPOINT_EVAL_SECONDS: seconds}, checkpoint.step
        )
        try:
            self.flush()
        except Exception as error:  # the tracking store is away: the points stay queued, training goes on
            log.warning("checkpoint %d's metrics kept for later: %s", checkpoint.number, error)
        self.trial.set_user_attr(ATTR_TRAINED_EPOCHS, checkpoint.epoch)
        pruner = self.config.pruner
        # The last checkpoint is reported (later trials meet this one there) but never pruned.
        if self.prunable and report_checkpoint(
            self.trial, pruner, value, per_prompt, self.positions, checkpoint.number, decide=not checkpoint.last
        ):
            name = objective.names[0]
            raise optuna.TrialPruned(
                prune_reason(pruner, name, value, checkpoint.number, checkpoint.epoch, checkpoint.step)
            )
        return value if objective.direction == "maximize" else -value

    def measure(self, checkpoint: Checkpoint) -> tuple[dict[str, float], list[float | None] | None]:
        """The checkpoint's metrics, and the objective's per-prompt scores when it is one column."""
        measured = dict(checkpoint.metrics)
        if self.scorer is None:
            return measured, None
        scores = self.scorer.score(checkpoint.answer)
        measured |= scores.metrics
        name = metrics.try_parse(self.config.objective.metric)
        if name is None or self.config.objective.weights:
            return measured, None
        column = PER_EXAMPLE_COLUMN.get(name.scorer, name.column) if name.family == metrics.TASK else name.column
        return measured, [row.get(column) for row in scores.rows]


def checkpoint_hook(
    trial: optuna.Trial,
    config: StudyConfig,
    scorer: CheckpointScorer | None,
    buffer: MetricBuffer,
    prunable: bool = True,
) -> CheckpointHook | None:
    """The trial's hook, or None when the objective is measured only after training."""
    if not config.evaluation.during_training.enabled:
        return None
    return CheckpointHook(trial, config, scorer, buffer.add, buffer.flush, prunable=prunable)
