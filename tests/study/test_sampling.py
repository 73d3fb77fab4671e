"""Every trial draws its own parameters: workers of one study, and a resumed study, never repeat
draws, and the same study seed gives trial k the same seed (what the dry run shows)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from harness.config import StudyConfig, parse_study
from harness.search_space import suggest
from harness.study.resume import open_study
from harness.study.sampling import make_sampler, sample_params, trial_seed

SAMPLERS = ["random", "tpe", "cmaes"]


def study_config(tmp_path: Path, sampler: str, n_startup_trials: int = 2) -> StudyConfig:
    return parse_study(
        {
            "study_name": "s",
            "data": {"train_file": "x.jsonl"},
            "storage": f"sqlite:///{tmp_path}/optuna.db",
            "sampler": {"type": sampler, "seed": 0, "n_startup_trials": n_startup_trials},
            "search_space": {
                "batch_size": [4, 8],
                "lr_multiplier": {"low": 0.5, "high": 4.0, "log": True},
                "dropout": {"low": 0.0, "high": 0.2},
            },
            "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/m.db"},
        }
    )


def run_trial(study: optuna.Study, config: StudyConfig) -> None:
    """One trial with a trivial objective: what a worker's sampler proposes is all that matters."""

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, config.search_space, config.backend)
        return params.lr_multiplier + params.dropout

    study.optimize(objective, n_trials=1)


def drawn(study: optuna.Study) -> list[tuple[tuple[str, object], ...]]:
    return [tuple(sorted(t.params.items())) for t in study.get_trials(states=(TrialState.COMPLETE,))]


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_workers_of_one_study_draw_different_parameters(tmp_path: Path, sampler: str) -> None:
    config = study_config(tmp_path, sampler)
    workers = [open_study(config), open_study(config)]  # each worker process builds its own sampler
    for _ in range(3):
        for study in workers:
            run_trial(study, config)
    params = drawn(workers[0])
    assert len(params) == 6 and len(set(params)) == 6, params


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_a_resumed_study_does_not_draw_its_first_trials_again(tmp_path: Path, sampler: str) -> None:
    config = study_config(tmp_path, sampler, n_startup_trials=10)  # the resume falls in the random startup
    first = open_study(config)
    run_trial(first, config)
    run_trial(first, config)
    resumed = open_study(config)  # a new process: a new sampler, seeded from the same config
    run_trial(resumed, config)
    run_trial(resumed, config)
    params = drawn(resumed)
    assert len(set(params)) == 4, params


def test_the_dry_run_shows_what_the_first_trials_draw_whichever_worker_runs_them(tmp_path: Path) -> None:
    config = study_config(tmp_path, "random")
    workers = [open_study(config), open_study(config)]
    for study in (*workers, workers[1], workers[0]):
        run_trial(study, config)
    expected = [p.as_flat_dict() for p in sample_params(config, 4)]
    ran = [t.params for t in workers[0].get_trials()]
    assert [{k: v for k, v in e.items() if k in r} for e, r in zip(expected, ran, strict=True)] == ran


def test_trial_seeds_are_stable_distinct_and_none_when_unseeded(tmp_path: Path) -> None:
    sampler = study_config(tmp_path, "tpe").sampler
    seeds = [trial_seed(sampler, n) for n in range(100)]
    assert seeds == [trial_seed(sampler, n) for n in range(100)]
    assert len(set(seeds)) == 100 and all(0 <= s < 2**32 for s in seeds if s is not None)
    assert trial_seed(sampler.model_copy(update={"seed": 1}), 0) != seeds[0]
    assert trial_seed(sampler.model_copy(update={"seed": None}), 0) is None


def test_tpe_steers_away_from_a_trial_running_in_another_worker(tmp_path: Path) -> None:
    """Constant liar: a RUNNING trial changes what TPE proposes next; a FAILED one does not."""
    config = study_config(tmp_path, "tpe")

    def next_draw(running: bool) -> dict[str, object]:
        study = optuna.create_study(sampler=make_sampler(config.sampler))
        for _ in range(4):
            run_trial(study, config)
        elsewhere = study.ask()  # another worker's trial, still training
        suggest(elsewhere, config.search_space, config.backend)
        if not running:
            study.tell(elsewhere, state=TrialState.FAIL)
        run_trial(study, config)
        return study.trials[-1].params

    assert next_draw(running=True) != next_draw(running=False)
