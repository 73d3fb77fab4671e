"""Local work directories after a study: keep the best k and the registered ones, delete the rest.

Each local trial leaves ``<work_dir>/<study>/<run id>/`` (checkpoints and final weights; a full
fine-tune of SmolLM2-135M is about 1 GB of it). ``training.keep_local: k`` keeps the directories
of the best k COMPLETE trials (by the rule that picks the best trial) and of every trial registered
under the study's model name; the directories of the other *finished* trials (COMPLETE, PRUNED,
FAIL) are deleted. A trial still running (another worker's) keeps its directory. ``None`` keeps all.
What a deleted directory held stays reachable when it was uploaded to the trial's run (see
:mod:`harness.lifecycle.weights`).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from harness.config import ObjectiveConfig, StudyConfig
from harness.lifecycle.registry import client_for
from harness.lifecycle.selection import select_best
from harness.storage import ATTR_RUN_ID

log = logging.getLogger(__name__)
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")  # MLflow's; anything else never becomes a path to delete
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


@dataclass(frozen=True)
class TrialDir:
    """A trial's local work directory and what retention needs to know about the trial."""

    run_id: str
    path: Path
    rank: int | None  # 0 = the best COMPLETE trial; None when the trial is not COMPLETE
    finished: bool  # False while it may still write there (RUNNING, WAITING)


def ranks(trials: Sequence[FrozenTrial], objective: ObjectiveConfig) -> dict[int, int]:
    """Pure: trial number -> rank among COMPLETE trials, best first, by repeated ``select_best``
    (so multi-objective studies rank like they pick their best: Pareto front, then first objective)."""
    remaining = list(trials)
    ranked: dict[int, int] = {}
    while (best := select_best(remaining, objective)) is not None:
        ranked[best.number] = len(ranked)
        remaining = [t for t in remaining if t.number != best.number]
    return ranked


def trial_dirs(
    trials: Sequence[FrozenTrial], objective: ObjectiveConfig, run_dir: Callable[[str], Path]
) -> list[TrialDir]:
    """Pure: the work directory of every trial that has an MLflow run, with its rank and state."""
    ranked = ranks(trials, objective)
    found = []
    for t in trials:
        run_id = t.user_attrs.get(ATTR_RUN_ID)
        if isinstance(run_id, str) and _RUN_ID.match(run_id):
            found.append(TrialDir(run_id, run_dir(run_id), ranked.get(t.number), t.state in FINISHED))
    return found


def plan(trials: Sequence[TrialDir], k: int | None, registered: Collection[str]) -> list[Path]:
    """Pure: the directories to delete: finished trials outside the best ``k`` and not registered.

    ``k`` None keeps everything. Nothing here looks at the disk: a path may not exist.
    """
    if k is None:
        return []
    return [t.path for t in trials if t.finished and t.run_id not in registered and (t.rank is None or t.rank >= k)]


def size(path: Path) -> int:
    """Bytes of the files under ``path`` (links not followed); 0 when it is not there."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue  # gone meanwhile
    return total


def apply(paths: Iterable[Path]) -> int:
    """Delete the directories; returns the bytes freed. A directory that cannot be removed is
    logged and skipped: retention never fails a study that finished."""
    freed = 0
    for path in paths:
        if not path.is_dir() or path.is_symlink():
            continue
        held = size(path)
        try:
            shutil.rmtree(path)
        except OSError as exc:
            log.warning("could not delete %s: %s", path, exc)
            continue
        freed += held
    return freed


def registered_runs(client: Any, name: str) -> set[str]:
    """Run ids of every version registered under ``name`` (none when the model does not exist)."""
    return {v.run_id for v in client.search_model_versions(f"name = '{name}'") if v.run_id}


def apply_retention(config: StudyConfig, study: optuna.Study) -> int:
    """End of a study: delete the local work dirs ``training.keep_local`` does not keep; returns
    the bytes freed (0 for remote backends, when keep_local is None, or when the registry cannot be
    read). Never raises for a registry or disk problem: it only logs it."""
    training = config.local_training
    if training is None or training.keep_local is None:
        return 0
    dirs = trial_dirs(
        study.get_trials(deepcopy=False),
        config.objective,
        lambda run_id: training.run_dir(config.study_name, run_id),
    )
    try:
        registered = registered_runs(client_for(config.mlflow.tracking_uri), config.registry_name)
    except Exception as exc:  # not knowing what is registered, delete nothing; the study still stands
        log.warning("retention skipped: cannot list the versions of %s: %s", config.registry_name, exc)
        return 0
    freed = apply(plan(dirs, training.keep_local, registered))
    log.info("retention: kept the best %d and the registered work dirs; freed %d bytes", training.keep_local, freed)
    return freed
