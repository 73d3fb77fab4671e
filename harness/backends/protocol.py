"""What the study needs from a backend, and what a trial hands back."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness.answering import Answerer, TokenCounter
from harness.search_space import TrialParams


@dataclass(frozen=True)
class Checkpoint:
    """A training trial at one of its checkpoints (evaluation.during_training), for the study to measure."""

    number: int  # 1, 2, ...: the epoch, when checkpoints are at epoch ends
    step: int  # the training step: the step of its MLflow points
    epoch: float  # epochs trained so far
    answer: Answerer  # answers from the model as it is now (already in memory)
    metrics: Mapping[str, float] = field(default_factory=dict)  # measured by training itself (eval_loss)
    # The trial's last checkpoint: training is over, so pruning it would save nothing (and lose its result).
    last: bool = False


@dataclass
class TrialContext:
    """Per-trial hooks a backend calls; it never sees Optuna or MLflow directly."""

    number: int
    log_metrics: Callable[[Mapping[str, float], int], None]
    # Reports an intermediate eval loss; raises optuna.TrialPruned when the pruner says so.
    report: Callable[[float, int], None]
    set_attr: Callable[[str, Any], None] = lambda key, value: None
    attrs: Mapping[str, Any] = field(default_factory=dict)
    progress: Any = None  # a rich Progress to add the trial's own bars to, when there is one
    # Text artifacts on the trial's run (job events, logs): (text, artifact_file).
    log_text: Callable[[str, str], None] = lambda text, artifact_file: None
    # Tags on the trial's run (the device it trains on, say), written at once.
    set_tags: Callable[[Mapping[str, str]], None] = lambda tags: None
    # Sum of a numeric user attr over the study's other trials (spend so far, for budgets).
    spent: Callable[[str], float] = lambda key: 0.0
    # A lock named ``name`` that every worker of the study shares (held in the study's storage):
    # what makes check-then-record steps, like reserving budget, atomic across processes.
    exclusive: Callable[[str], AbstractContextManager[Any]] = lambda name: nullcontext()
    # The trial's MLflow run id: names its local work directory (one per run, never reused).
    run_id: str = ""
    # Measures the objective at a checkpoint (evaluation.during_training): logs its curve, reports it
    # to the pruner and returns it signed so that higher is better; raises optuna.TrialPruned when
    # the pruner says so. None: the objective is measured only after training.
    checkpoint: Callable[[Checkpoint], float] | None = None
    # 0 for a search trial; k for the k-th confirmation repeat of a configuration, which trains
    # with its seed offset by k (training.seed + k locally, the job's seed + k remotely).
    repeat: int = 0


class TrialStopped(Exception):
    """Raised by a backend to end a trial with a specific run status and study effect.

    ``run_status`` "KILLED" for a cancelled job (the trial still ends as FAIL in Optuna);
    ``stop_study`` True when no further trial should start (a budget would be exceeded).
    ``code`` is the remote error code, logged as a tag.
    ``resumable`` True when the trial should run again on the next start: the work goes on
    elsewhere (a remote job still training, reattached then), or what stopped it clears up (an
    exhausted quota). The trial is marked interrupted and does not count against n_trials.
    """

    def __init__(
        self,
        message: str,
        *,
        run_status: str = "FAILED",
        stop_study: bool = False,
        code: str = "",
        resumable: bool = False,
    ) -> None:
        super().__init__(message)
        self.run_status = run_status
        self.stop_study = stop_study
        self.code = code
        self.resumable = resumable


@dataclass(frozen=True)
class TrainResult:
    metrics: dict[str, float]
    params: dict[str, Any]
    model_dir: Path | None = None  # adapter or full weights, for evaluation and the registry
    remote_model: str | None = None  # a fine-tuned model id on a remote service
    # Greedy answers from the trained model for a batch of chat prompts (message lists).
    answer: Answerer | None = None
    # Frees what the trained model holds (e.g. unloads LoRA layers from the shared base).
    release: Callable[[], None] = lambda: None


class Backend(Protocol):
    """Validates everything in ``prepare`` (before any run exists), then trains trials.

    Everything the study asks of a backend is here; a backend with nothing to offer for one of the
    before-picture members (a remote service: no local tokenizer, no untuned model to run) says
    so with None or {}, and the study leaves that part out.
    """

    def prepare(self) -> dict[str, Any]:
        """Load and check data and model; return dataset facts worth logging (digest, counts)."""
        ...

    def train(self, params: TrialParams, ctx: TrialContext) -> TrainResult: ...

    def dry_run(self, params: Sequence[TrialParams]) -> str:
        """Everything ``prepare`` checks plus what these sampled trials would do; no training, no spend."""
        ...

    def token_counter(self) -> TokenCounter | None:
        """Token counts with the base model's own tokenizer (evaluation sizes answer budgets with
        them); None: evaluation estimates from characters."""
        ...

    def base_answerer(self) -> Answerer | None:
        """Answers from the untuned base model, for the study's baseline run; None: no baseline."""
        ...

    def baseline_metrics(self) -> dict[str, float]:
        """The untuned base model's own training metrics (its eval loss), logged on the baseline run."""
        ...
