"""The study's state in Optuna storage: open or resume it, and reconcile trials whose process died."""

from __future__ import annotations

import os
import socket
import warnings

import optuna
from optuna.trial import FrozenTrial, TrialState

from harness.config import StudyConfig
from harness.storage import ATTR_HOST, ATTR_INTERRUPTED, ATTR_PID, ATTR_RETRY_OF, ATTR_RUN_ID, make_storage
from harness.study.sampling import make_pruner, make_sampler
from harness.tracking import Tracker

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def open_study(config: StudyConfig) -> optuna.Study:
    """Create the study or load it under the same name: resuming never reruns finished trials."""
    study = optuna.create_study(
        study_name=config.study_name,
        storage=make_storage(config.storage),
        sampler=make_sampler(config.sampler),
        pruner=make_pruner(config.pruner),
        directions=config.objective.directions,
        load_if_exists=True,
    )
    if study.metric_names != config.objective.names:
        # optuna-dashboard, which opens the same storage, shows these instead of "Objective 0".
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(config.objective.names)
    return study


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_orphaned(trial: FrozenTrial) -> bool:
    """A RUNNING trial whose process, on this host, is gone (killed, crashed, powered off)."""
    attrs = trial.user_attrs
    if trial.state != TrialState.RUNNING or attrs.get(ATTR_HOST) != socket.gethostname():
        return False
    pid = attrs.get(ATTR_PID)
    return isinstance(pid, int) and pid != os.getpid() and not _process_alive(pid)


def reconcile(study: optuna.Study, tracker: Tracker) -> list[int]:
    """Fail trials (and runs) whose process died; queue every interrupted trial's params again.

    User attrs under ``resume.`` (a remote job id, say) travel to the retry, so a backend can
    reattach to work already paid for instead of starting it again.
    """
    storage = study._storage
    for trial in (t for t in study.get_trials(deepcopy=False) if is_orphaned(t)):
        storage.set_trial_user_attr(trial._trial_id, ATTR_INTERRUPTED, True)
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        run_id = trial.user_attrs.get(ATTR_RUN_ID)
        if run_id and tracker.status(run_id) == "RUNNING":
            reason = f"process {trial.user_attrs.get(ATTR_PID)} died mid-trial"
            tracker.set_tags(run_id, {"harness.trial_state": "FAIL", "harness.error": reason})
            tracker.end(run_id, "FAILED")
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get(ATTR_RETRY_OF) for t in trials}
    requeued = []
    for trial in trials:
        attrs = trial.user_attrs
        if trial.state != TrialState.FAIL or not attrs.get(ATTR_INTERRUPTED) or trial.number in retried:
            continue
        carried = {k: v for k, v in attrs.items() if k.startswith("resume.")}
        study.enqueue_trial(trial.params, user_attrs={ATTR_RETRY_OF: trial.number, **carried})
        requeued.append(trial.number)
    return requeued


def trials_done(study: optuna.Study) -> int:
    """Finished trials that count against n_trials: interrupted ones will run again."""
    return sum(
        t.state in FINISHED or (t.state == TrialState.FAIL and not t.user_attrs.get(ATTR_INTERRUPTED))
        for t in study.get_trials(deepcopy=False)
    )
