"""Optuna's journal file storage: one worker at a time per study, because it keeps no heartbeats.

On SQLite, PostgreSQL or MySQL every running trial writes heartbeats, so a trial whose worker died
goes stale and another worker fails it and runs it again. A journal file has none (Optuna 5): a
trial left RUNNING by a killed worker cannot be told from one still training, so other workers
would wait for it forever, or leave the study short. Waiting a fixed time instead would fail
trials that are merely slow. So a worker on a journal study holds a lock beside the journal for
its whole life, which the operating system frees when the worker dies: a second worker is refused
at once, and the worker that holds the lock knows that every RUNNING trial it finds was left by a
dead one, fails it (closing its MLflow run FAILED with the reason) and runs its parameters again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from harness.config import ConfigError, StudyConfig
from harness.storage import ATTR_RUN_ID, is_journal
from harness.study.coordination import study_lock
from harness.tracking import TAG_STATE, Tracker

ONE_WORKER = (
    "an Optuna journal file keeps no heartbeats, so a worker that dies there cannot be told from one"
    " still training: a journal study runs one worker at a time. For several workers use a SQLite"
    " file (one machine) or PostgreSQL (any number of machines) as storage"
)
ORPHAN_REASON = "its worker died mid-trial (found RUNNING by the next worker of this journal study)"


class SecondWorkerError(ConfigError):
    """Another worker already runs this journal study."""


@contextlib.contextmanager
def sole_worker(config: StudyConfig) -> Iterator[None]:
    """On a journal study, be its only worker while inside; elsewhere, nothing to do."""
    if not is_journal(config.storage):
        yield
        return
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(study_lock(config.storage, f"{config.study_name}:worker", timeout_s=0))
        except TimeoutError:
            raise SecondWorkerError(
                f"storage: another worker runs study {config.study_name!r} in {config.storage}; {ONE_WORKER}"
            ) from None
        yield


def fail_orphans(config: StudyConfig, study: optuna.Study, tracker: Tracker) -> list[int]:
    """Inside ``sole_worker`` on a journal study: fail the trials a dead worker left RUNNING, close
    their runs, queue their parameters again (as heartbeats would); the numbers queued again."""
    if not is_journal(config.storage):
        return []
    retry = RetryHeartbeatStaleTrialCallback(max_retry=config.workers.max_retry)
    queued = []
    for orphan in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        failed = study.tell(orphan.number, state=TrialState.FAIL, skip_if_finished=True)
        run_id = failed.user_attrs.get(ATTR_RUN_ID)
        if run_id and tracker.status(run_id) == "RUNNING":
            tracker.set_tags(run_id, {TAG_STATE: "FAIL", "harness.error": ORPHAN_REASON})
            tracker.end(run_id, "FAILED")
        trials_before = len(study.get_trials(deepcopy=False))
        retry(study, failed)  # queues it again unless workers.max_retry retries were spent
        if len(study.get_trials(deepcopy=False)) > trials_before:
            queued.append(orphan.number)
    return queued
