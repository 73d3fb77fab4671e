"""The study's state in Optuna storage: open or resume it, and recover trials whose worker died.

A worker that dies mid-trial (SIGKILL, a lost machine) stops writing Optuna heartbeats; the next
worker to look fails that trial (public ``fail_stale_trials``), closes its MLflow run FAILED with
the reason, and queues its parameters again through Optuna's ``RetryHeartbeatStaleTrialCallback``. A trial
stopped by Ctrl-C or SIGTERM is closed by its own worker and queued again on the next start.
"""

from __future__ import annotations

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import FrozenTrial, TrialState

from harness.config import StudyConfig
from harness.storage import (
    ATTR_INTERRUPTED,
    ATTR_REPEAT,
    ATTR_REPEAT_OF,
    ATTR_RETRY_OF,
    ATTR_RUN_ID,
    HeartbeatOptions,
    make_storage,
    repeat_of,
)
from harness.study.pruning import make_pruner
from harness.study.sampling import make_sampler
from harness.tracking import Tracker

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
STALE_REASON = "its worker stopped sending heartbeats (killed, crashed or lost) mid-trial"


def open_study(config: StudyConfig, tracker: Tracker | None = None) -> optuna.Study:
    """Create the study or load it under the same name: resuming never reruns finished trials.

    With ``tracker`` the storage runs heartbeats, as every worker that runs trials must.
    """
    heartbeat = None
    if tracker is not None:
        workers = config.workers
        on_stale = StaleTrialHandler(tracker, RetryHeartbeatStaleTrialCallback(max_retry=workers.max_retry))
        heartbeat = HeartbeatOptions(workers.heartbeat_interval_s, workers.grace_period_s, on_stale)
    study = optuna.create_study(
        study_name=config.study_name,
        storage=make_storage(config.storage, heartbeat, config.workers.reconnect_s),
        sampler=make_sampler(config.sampler),
        pruner=make_pruner(config.pruner),
        directions=config.objective.directions,
        load_if_exists=True,
    )
    if study.metric_names != config.objective.names:
        # optuna-dashboard, which opens the same storage, shows these instead of "Objective 0".
        study.set_metric_names(config.objective.names)
    return study


class StaleTrialHandler:
    """Optuna's stale-trial callback: the dead trial's MLflow run is closed truthfully, then retried."""

    def __init__(self, tracker: Tracker, retry: RetryHeartbeatStaleTrialCallback) -> None:
        self.tracker = tracker
        self.retry = retry

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        run_id = trial.user_attrs.get(ATTR_RUN_ID)
        if run_id and self.tracker.status(run_id) == "RUNNING":
            self.tracker.set_tags(run_id, {"harness.trial_state": "FAIL", "harness.error": STALE_REASON})
            self.tracker.end(run_id, "FAILED")
        self.retry(study, trial)


def recover(study: optuna.Study) -> list[int]:
    """Fail trials of dead workers (and retry them); queue every interrupted trial's params again.

    User attrs under ``resume.`` (a remote job id, say) travel to the retry, so a backend can
    reattach to work already paid for instead of starting it again. Returns the trial numbers
    queued again.
    """
    before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))}
    _fail_stale(study)
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get(ATTR_RETRY_OF) for t in trials} | {retry_of(t) for t in trials}
    requeued = [n for t in trials if t.number not in before and (n := retry_of(t)) is not None]
    for trial in trials:
        attrs = trial.user_attrs
        if trial.state != TrialState.FAIL or not attrs.get(ATTR_INTERRUPTED) or trial.number in retried:
            continue
        # A confirmation trial's retry is still that repeat (harness.study.confirm).
        carried = {k: v for k, v in attrs.items() if k.startswith("resume.") or k in (ATTR_REPEAT_OF, ATTR_REPEAT)}
        study.enqueue_trial(trial.params, user_attrs={ATTR_RETRY_OF: trial.number, **carried})
        requeued.append(trial.number)
    return requeued


def trials_done(study: optuna.Study) -> int:
    """Search trials that count against n_trials: finished, running or failed for good.

    Interrupted trials and dead workers' trials run again, so they do not count; trials running in
    other workers do, so that workers together run n_trials, not n_trials each. Confirmation trials
    (repeats of a configuration with another seed) are not part of the search and never count.
    """
    trials = study.get_trials(deepcopy=False)
    retried = {retry_of(t) for t in trials}
    return sum(
        repeat_of(t) is None
        and (
            t.state in (*FINISHED, TrialState.RUNNING)
            or (t.state == TrialState.FAIL and not t.user_attrs.get(ATTR_INTERRUPTED) and t.number not in retried)
        )
        for t in trials
    )


def running_elsewhere(study: optuna.Study) -> bool:
    """Whether another worker is mid-trial (dead workers' trials are failed first)."""
    _fail_stale(study)
    return bool(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def retry_of(trial: FrozenTrial) -> int | None:
    """The number of the dead worker's trial that ``trial`` runs again, if it is such a retry."""
    return RetryHeartbeatStaleTrialCallback.retried_trial_number(trial)


def _fail_stale(study: optuna.Study) -> None:
    fail_stale_trials(study)
