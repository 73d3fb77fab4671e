"""The OpenAI budget is one budget per study, however many workers reserve from it at once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import optuna
import pytest

from harness.backends.openai.backend import ATTR_COST, OpenAIBackend
from harness.backends.protocol import TrialContext, TrialStopped
from harness.storage import make_storage
from harness.study.coordination import study_lock
from tests.backends.fake_api import FakeAPI
from tests.backends.test_openai_ft import JOBS, PARAMS, api_env, make_config

WORKERS = 4
__all__ = ["api_env"]  # the autouse fixture: a key in the environment, as the backend needs


def _worker(config, fake: FakeAPI, url: str, barrier: threading.Barrier) -> str:
    """One worker as a separate process has it: its own backend (own thread lock) and storage."""
    study = optuna.load_study(study_name=config.study_name, storage=make_storage(url))
    trial = study.ask()

    def spent(key: str) -> float:
        others = study.get_trials(deepcopy=False)
        total = sum(t.user_attrs.get(key, 0.0) for t in others if t.number != trial.number)
        time.sleep(0.3)  # a slow worker: every other one reads the same spend meanwhile
        return total

    ctx = TrialContext(
        number=trial.number,
        log_metrics=lambda metrics, step: None,
        report=lambda value, step: None,
        set_attr=trial.set_user_attr,
        spent=spent,
        exclusive=lambda name: study_lock(url, f"{config.study_name}:{name}"),
    )
    backend = OpenAIBackend(config, http_client=fake.http_client(), sleep=lambda s: None)
    barrier.wait()
    try:
        backend.train(PARAMS, ctx)
    except TrialStopped as stopped:
        return stopped.code
    return "trained"


def test_workers_together_never_pass_the_budget(
    tmp_path: Path, chat_files: tuple[Path, Path], postgres_url: str
) -> None:
    probe = make_config(tmp_path, chat_files)
    one_job = OpenAIBackend(probe).load()[1].cost_usd(PARAMS.epochs)
    config = make_config(tmp_path, chat_files, storage=postgres_url, openai__budget_usd=one_job * 2.5)
    optuna.create_study(study_name=config.study_name, storage=make_storage(postgres_url))
    fake = FakeAPI()
    barrier = threading.Barrier(WORKERS)

    with ThreadPoolExecutor(WORKERS) as pool:
        outcomes = list(pool.map(lambda _: _worker(config, fake, postgres_url, barrier), range(WORKERS)))

    assert sorted(outcomes) == ["budget_exceeded", "budget_exceeded", "trained", "trained"]
    assert len(fake.calls("POST", JOBS)) == 2
    study = optuna.load_study(study_name=config.study_name, storage=make_storage(postgres_url))
    reserved = sum(t.user_attrs.get(ATTR_COST, 0.0) for t in study.trials)
    assert reserved == pytest.approx(one_job * 2)
