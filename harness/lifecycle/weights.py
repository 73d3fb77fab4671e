"""A trial's weights, reachable from any machine: uploaded to its MLflow run, found again later.

A local trial trains into ``<work_dir>/<study>/<run id>/`` on the machine that ran it (final weights
in ``final/``, tagged ``harness.model_dir`` on the run). So that registration and ``harness eval
RUN_ID`` work from anywhere, and after retention deleted that directory, a COMPLETE trial also
uploads its final weights to its own run under ``weights/`` (tag ``harness.weights_artifact``),
in the study's experiment and artifact root:

- a LoRA adapter always (with the tokenizer, a few MB);
- full weights under ``training.log_full_weights``: ``best`` (default) when the trial is the best
  COMPLETE trial of the study so far, ``all``, or ``none``. A full fine-tune of SmolLM2-135M is
  about 540 MB; the best so far is what registration picks, and a study has few of them.

Readers use the local directory when this machine still has it (it is that run's and no other's),
else download the uploaded copy into a temporary directory, removed when they are done.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optuna.trial import FrozenTrial, TrialState, create_trial

from harness.config import ObjectiveConfig
from harness.lifecycle.selection import select_best

# local_weights lives with the loaders (serving), which need it for lineage bases; importable from here too.
from harness.lifecycle.serving import ModelSpec, local_spec, local_weights, remote_spec, weights_kind
from harness.tracking import TAG_WEIGHTS, Tracker

if TYPE_CHECKING:
    from harness.config import StudyConfig
    from harness.settings.training import FullWeightsPolicy

WEIGHTS_PATH = "weights"  # the artifact directory on a trial's run
__all__ = ["best_so_far", "keep_weights", "local_weights", "trial_model", "uploads"]


def uploads(kind: str, policy: FullWeightsPolicy, best_so_far: bool) -> bool:
    """Pure: whether a COMPLETE trial's weights of ``kind`` go to its run under ``policy``."""
    if kind == "lora":
        return True  # a few MB: every complete trial stays registrable from anywhere
    return policy == "all" or (policy == "best" and best_so_far)


def best_so_far(
    completed: Sequence[FrozenTrial], number: int, value: float | list[float], objective: ObjectiveConfig
) -> bool:
    """Pure: whether trial ``number``, ending with ``value``, is the best COMPLETE trial so far (the
    rule registration uses, ties to the lower number). Its own state is not COMPLETE yet: Optuna
    marks it when the objective returns, after the upload."""
    values = value if isinstance(value, list) else [value]
    if not all(math.isfinite(v) for v in values):
        return False  # never the best (select_best skips it), and Optuna fails a NaN trial anyway
    candidate = create_trial(state=TrialState.COMPLETE, values=values)
    candidate.number = number
    others = [t for t in completed if t.number != number and t.state == TrialState.COMPLETE]
    best = select_best([*others, candidate], objective)
    return best is not None and best.number == number


def keep_weights(tracker: Tracker, run_id: str, model_dir: Path, policy: FullWeightsPolicy, best: bool) -> bool:
    """Upload a complete trial's final weights to its run when the policy says so; True if uploaded.

    The tag is set after the upload: a run that claims a copy always has all of it.
    """
    if not uploads(weights_kind(model_dir), policy, best):
        return False
    tracker.log_artifacts(run_id, model_dir, WEIGHTS_PATH)
    tracker.set_tags(run_id, {TAG_WEIGHTS: WEIGHTS_PATH})
    return True


@contextmanager
def trial_model(run: Any, config: StudyConfig, client: Any) -> Iterator[tuple[ModelSpec, Path | None]]:
    """How to load the model a trial run left behind, with its weights on this machine (local
    models; a download lives until the block ends) or None (a remote model id)."""
    spec = remote_spec(run, config)
    if spec is not None:
        yield spec, None
        return
    with local_weights(run, client) as weights:
        base = run.data.tags.get("harness.base_model", config.base_model)
        yield local_spec(weights, base, config.system_prompt), weights
