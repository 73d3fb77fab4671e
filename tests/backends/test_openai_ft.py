"""The OpenAI fine-tuning backend against a fake service (httpx.MockTransport), no network."""

from __future__ import annotations

import functools
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import optuna
import pytest
from mlflow.tracking import MlflowClient

from harness.backends.openai import backend as openai_ft
from harness.backends.openai.backend import ATTR_JOB, OpenAIBackend
from harness.backends.protocol import TrialContext, TrialStopped
from harness.config import ConfigError, StudyConfig, parse_study
from harness.data.chat import DataError
from harness.search_space import TrialParams
from harness.study import run_sweep
from harness.study.sampling import sample_params
from tests.backends.fake_api import FakeAPI, payload
from tests.conftest import SYSTEM, chat_record, write_jsonl

SECRET = "sk-test-harness-SECRET-0123456789abcdef"
MODEL = "gpt-4o-mini-2024-07-18"
JOBS = r"/fine_tuning/jobs$"
ONE_JOB = r"/fine_tuning/jobs/[^/]+$"


@pytest.fixture(autouse=True)
def api_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    for name in ("OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)


def make_config(tmp_path: Path, files: tuple[Path, Path], **overrides: Any) -> StudyConfig:
    train, heldout = files
    raw: dict[str, Any] = {
        "study_name": "seed-rounds",
        "backend": "openai",
        "base_model": MODEL,
        "system_prompt": SYSTEM,
        "data": {"train_file": str(train), "validation_file": str(heldout)},
        "search_space": {
            "epochs": [1, 3],
            "batch_size": [1, 12],
            "lr_multiplier": 1.0,
            "method": "supervised",
        },
        "sampler": {"type": "random", "seed": 0},
        "pruner": {"type": "none"},
        "n_trials": 1,
        "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlruns/mlflow.db"},
        "storage": f"sqlite:///{tmp_path}/mlruns/optuna.db",
        "evaluation": {"enabled": False},
        "openai": {"poll_interval_s": 0.001, "poll_max_interval_s": 0.01, "token_counter": "chars"},
    }
    for key, value in overrides.items():
        section, _, name = key.partition("__")
        if name:
            raw[section] = {**raw[section], name: value}
        else:
            raw[section] = value
    return parse_study(raw)


def use_fake(monkeypatch: pytest.MonkeyPatch, fake: FakeAPI, sleep: Any = None) -> list[float]:
    """Make run_sweep's backend talk to ``fake``; returns the list of requested sleeps."""
    sleeps: list[float] = []
    patched = functools.partial(OpenAIBackend, http_client=fake.http_client(), sleep=sleep or sleeps.append)
    monkeypatch.setattr(openai_ft, "OpenAIBackend", patched)
    return sleeps


def backend_for(config: StudyConfig, fake: FakeAPI, sleeps: list[float] | None = None) -> OpenAIBackend:
    return OpenAIBackend(
        config,
        http_client=fake.http_client(),
        sleep=sleeps.append if sleeps is not None else lambda s: None,
    )


class Recorder:
    """A TrialContext that keeps what the backend sent to it."""

    def __init__(self, attrs: dict[str, Any] | None = None, prune_at: int | None = None):
        self.metrics: list[tuple[int, dict[str, float]]] = []
        self.reports: list[tuple[int, float]] = []
        self.attrs: dict[str, Any] = {}
        self.texts: dict[str, str] = {}
        self.prune_at = prune_at
        self.ctx = TrialContext(
            number=0,
            log_metrics=lambda m, step: self.metrics.append((step, dict(m))),
            report=self._report,
            set_attr=self.attrs.__setitem__,
            attrs=attrs or {},
            log_text=lambda text, name: self.texts.__setitem__(name, text),
        )

    def _report(self, value: float, step: int) -> None:
        self.reports.append((step, value))
        if self.prune_at is not None and step >= self.prune_at:
            raise optuna.TrialPruned(f"eval_loss {value} at step {step}")


PARAMS = TrialParams(epochs=3, batch_size=1, lr_multiplier=1.0, dropout=0.0, method="supervised")


def child_runs(config: StudyConfig) -> list[Any]:
    client = MlflowClient(config.mlflow.tracking_uri)
    experiment = client.get_experiment_by_name(config.study_name)
    runs = client.search_runs([experiment.experiment_id])
    return sorted(
        (r for r in runs if "harness.trial_number" in r.data.tags),
        key=lambda r: int(r.data.tags["harness.trial_number"]),
    )


# -- a whole trial through run_sweep ---------------------------------------------------------


def test_successful_trial_is_read_back_from_mlflow(
    tmp_path: Path, chat_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeAPI()
    use_fake(monkeypatch, fake)
    config = make_config(tmp_path, chat_files)
    result = run_sweep(config, progress=None)

    (trial,) = result.study.trials
    assert trial.state == optuna.trial.TrialState.COMPLETE
    (create,) = fake.calls("POST", JOBS)
    body = create.json()
    hyper = body["method"]["supervised"]["hyperparameters"]
    assert body["method"]["type"] == "supervised"
    assert set(hyper) == {"n_epochs", "batch_size", "learning_rate_multiplier"}
    assert hyper["learning_rate_multiplier"] == 1.0
    assert body["model"] == MODEL and body["suffix"] == "seed-rounds-t0"
    assert body["validation_file"] and body["training_file"] != body["validation_file"]
    assert trial.user_attrs[ATTR_JOB] in fake.jobs
    assert trial.user_attrs["estimated_cost_usd"] > 0

    (run,) = child_runs(config)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["eval_loss"] == pytest.approx(1.5)  # last valid_loss of the result file
    assert run.data.metrics["trained_tokens"] == 1234
    assert run.data.params["openai_job_id"] == trial.user_attrs[ATTR_JOB]
    assert run.data.params["fine_tuned_model"].startswith(f"ft:{MODEL}")
    client = MlflowClient(config.mlflow.tracking_uri)
    # 1-4 are the job's curve, each step once although both events and the result file carry
    # it; the trial's final metrics (logged by the objective) end the curve at the last step.
    history = client.get_metric_history(run.info.run_id, "train_loss")
    assert sorted(m.step for m in history) == [1, 2, 3, 4, 4]
    eval_steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "eval_accuracy"))
    assert eval_steps == [1, 3, 4, 4]
    events = client.download_artifacts(run.info.run_id, "openai/events.log", str(tmp_path / "a"))
    assert "Step 1/4" in Path(events).read_text()


@pytest.mark.parametrize(("seed", "seeds_sent"), [(None, [None, 1, 2]), (7, [7, 8, 9])])
def test_confirmation_jobs_train_the_same_configuration_with_seed_plus_k(
    tmp_path: Path, chat_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, seed: int | None, seeds_sent: list
) -> None:
    fake = FakeAPI()
    use_fake(monkeypatch, fake)
    config = make_config(tmp_path, chat_files, confirm={"top_k": 1, "seeds": 2}, openai__seed=seed)
    trials = run_sweep(config, progress=None).study.trials
    bodies = [call.json() for call in fake.calls("POST", JOBS)]
    sent = sorted((body.get("seed") for body in bodies), key=lambda s: (s is not None, s or 0))  # jobs run at once
    assert sent == seeds_sent
    assert len({json.dumps(body["method"], sort_keys=True) for body in bodies}) == 1  # one configuration
    assert sorted(t.user_attrs.get("harness.repeat", 0) for t in trials) == [0, 1, 2]


def test_failed_job_fails_the_run_with_the_job_error_code(
    tmp_path: Path, chat_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    use_fake(monkeypatch, FakeAPI(outcome="failed"))
    config = make_config(tmp_path, chat_files)
    result = run_sweep(config)

    assert result.study.trials[0].state == optuna.trial.TrialState.FAIL
    (run,) = child_runs(config)
    assert run.info.status == "FAILED"
    assert run.data.tags["harness.error_code"] == "invalid_training_file"
    assert "invalid training file" in run.data.tags["harness.error"]


def test_restart_reattaches_to_the_running_job(
    tmp_path: Path, chat_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeAPI()
    config = make_config(tmp_path, chat_files)

    def ctrl_c(seconds: float) -> None:
        raise KeyboardInterrupt

    use_fake(monkeypatch, fake, sleep=ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(config)  # one trial, so it runs in the main thread as a Ctrl-C would
    (job_id,) = fake.jobs
    assert fake.jobs[job_id]["status"] == "running"  # left running on purpose

    use_fake(monkeypatch, fake)  # a new process: new backend, same service
    result = run_sweep(config)

    assert len(fake.calls("POST", JOBS)) == 1
    assert len(fake.calls("POST", r"/files$")) == 2  # train and validation, uploaded once
    retry = result.study.trials[-1]
    assert retry.state == optuna.trial.TrialState.COMPLETE
    assert retry.user_attrs[ATTR_JOB] == job_id
    assert child_runs(config)[-1].data.params["openai_job_id"] == job_id


def test_budget_refuses_the_trial_that_would_pass_it(
    tmp_path: Path, chat_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeAPI()
    use_fake(monkeypatch, fake)
    probe = make_config(tmp_path, chat_files, search_space__epochs=3)
    one_trial = OpenAIBackend(probe).load()[1].cost_usd(3)
    config = make_config(
        tmp_path,
        chat_files,
        search_space__epochs=3,
        n_trials=3,
        openai__budget_usd=one_trial * 1.5,
        openai__token_counter="chars",
        openai__max_concurrent_jobs=1,  # in order: the second trial is the one refused
    )
    result = run_sweep(config)

    states = [t.state for t in result.study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL]
    assert len(fake.calls("POST", JOBS)) == 1
    assert child_runs(config)[1].data.tags["harness.error_code"] == "budget_exceeded"


def test_api_key_never_reaches_mlflow_or_optuna(
    tmp_path: Path, chat_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeAPI()
    use_fake(monkeypatch, fake)
    config = make_config(tmp_path, chat_files)
    result = run_sweep(config)

    assert all(r.headers["authorization"] == f"Bearer {SECRET}" for r in fake.requests)
    client = MlflowClient(config.mlflow.tracking_uri)
    experiment = client.get_experiment_by_name(config.study_name)
    seen = []
    for run in client.search_runs([experiment.experiment_id]):
        seen += [json.dumps(run.data.params), json.dumps(run.data.tags)]
        target = tmp_path / "artifacts" / run.info.run_id
        target.mkdir(parents=True)
        client.download_artifacts(run.info.run_id, "", str(target))
        seen += [p.read_text(errors="replace") for p in target.rglob("*") if p.is_file()]
    assert len(seen) > 4
    for trial in result.study.trials:
        seen += [
            json.dumps(trial.user_attrs, default=str),
            json.dumps(trial.system_attrs, default=str),
        ]
    assert not [text for text in seen if SECRET in text]


# -- one trial, directly ---------------------------------------------------------------------


def test_pruned_trial_cancels_its_job(tmp_path: Path, chat_files: tuple[Path, Path]) -> None:
    fake = FakeAPI(steps=6)
    recorder = Recorder(prune_at=3)
    with pytest.raises(optuna.TrialPruned):
        backend_for(make_config(tmp_path, chat_files), fake).train(PARAMS, recorder.ctx)
    (job_id,) = fake.jobs
    assert len(fake.calls("POST", r"/cancel$")) == 1
    assert fake.jobs[job_id]["status"] == "cancelled"
    assert [step for step, _ in recorder.reports] == [1, 3]
    assert recorder.attrs[ATTR_JOB] == job_id


def test_answers_come_from_the_fine_tuned_model(tmp_path: Path, chat_files: tuple[Path, Path]) -> None:
    fake = FakeAPI(base64_result=True)
    recorder = Recorder()
    result = backend_for(make_config(tmp_path, chat_files), fake).train(PARAMS, recorder.ctx)

    assert result.metrics["eval_loss"] == pytest.approx(1.5)  # base64 result file decoded
    assert result.answer is not None
    replies = result.answer([[{"role": "user", "content": "How do I reverse a list?"}]])
    assert replies == [payload("chat_completion.json")["choices"][0]["message"]["content"]]
    sent = fake.calls("POST", r"/chat/completions$")[0].json()
    assert sent["model"] == result.remote_model and sent["temperature"] == 0


def test_rate_limit_waits_as_told_and_creates_one_job(tmp_path: Path, chat_files: tuple[Path, Path]) -> None:
    fake = FakeAPI()
    fake.fail("POST", JOBS, 429, payload("error_rate_limit.json"), headers={"retry-after": "7"})
    sleeps: list[float] = []
    backend_for(make_config(tmp_path, chat_files), fake, sleeps).train(PARAMS, Recorder().ctx)

    assert sleeps[0] == 7.0
    assert len(fake.calls("POST", JOBS)) == 2 and len(fake.jobs) == 1


def test_insufficient_quota_fails_fast(tmp_path: Path, chat_files: tuple[Path, Path]) -> None:
    fake = FakeAPI()
    fake.fail("POST", r"/files$", 429, payload("error_insufficient_quota.json"), times=10)
    sleeps: list[float] = []
    with pytest.raises(TrialStopped) as stopped:
        backend_for(make_config(tmp_path, chat_files), fake, sleeps).train(PARAMS, Recorder().ctx)

    assert stopped.value.code == "insufficient_quota" and stopped.value.stop_study
    assert "quota" in str(stopped.value)
    assert len(fake.calls("POST", r"/files$")) == 1 and sleeps == []


def test_api_errors_never_carry_the_key(tmp_path: Path, chat_files: tuple[Path, Path]) -> None:
    def error(code: str) -> dict[str, Any]:
        message = f"Incorrect API key provided: {SECRET}."
        return {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": code,
            }
        }

    for status, code, stop in ((401, "invalid_api_key", True), (400, "invalid_value", False)):
        fake = FakeAPI()
        fake.fail("POST", r"/files$", status, error(code))
        with pytest.raises(TrialStopped) as stopped:
            backend_for(make_config(tmp_path, chat_files), fake).train(PARAMS, Recorder().ctx)
        assert SECRET not in str(stopped.value) and stopped.value.__cause__ is None
        assert (stopped.value.code, stopped.value.stop_study) == (code, stop)


def test_server_errors_retry_a_bounded_number_of_times(tmp_path: Path, chat_files: tuple[Path, Path]) -> None:
    fake = FakeAPI()
    fake.fail("GET", ONE_JOB, 500, payload("error_server.json"), times=2)
    backend_for(make_config(tmp_path, chat_files), fake).train(PARAMS, Recorder().ctx)

    creating = FakeAPI()
    creating.fail("POST", JOBS, 503, payload("error_server.json"), times=100)
    config = make_config(tmp_path, chat_files, openai__max_retries=2)
    with pytest.raises(TrialStopped) as stopped:
        backend_for(config, creating).train(PARAMS, Recorder().ctx)
    assert stopped.value.code == "http_503"
    assert not stopped.value.resumable  # no job exists: nothing to come back to
    assert len(creating.calls("POST", JOBS)) == 3


def test_a_polling_outage_pauses_the_trial_until_the_api_returns(tmp_path: Path, chat_files: tuple[Path, Path]) -> None:
    fake = FakeAPI()
    # 30 failed requests: ten polls in a row fail past their own retries.
    fake.fail("GET", ONE_JOB, 503, payload("error_server.json"), times=30)
    config = make_config(tmp_path, chat_files, openai__max_retries=2)
    recorder = Recorder()
    result = backend_for(config, fake).train(PARAMS, recorder.ctx)

    assert result.remote_model
    assert fake.jobs[recorder.attrs[ATTR_JOB]]["status"] == "succeeded"
    events = recorder.texts["openai/events.log"]
    assert "polling failed (InternalServerError)" in events
    assert "polling works again" in events


def test_a_long_polling_outage_stops_the_trial_and_its_retry_reattaches(
    tmp_path: Path, chat_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeAPI()
    fake.fail("GET", ONE_JOB, 503, payload("error_server.json"), times=10_000)
    config = make_config(
        tmp_path, chat_files, n_trials=2, openai__poll_outage_max_s=3600.0, openai__max_concurrent_jobs=1
    )
    sleeps: list[float] = []
    patched = functools.partial(
        OpenAIBackend, http_client=fake.http_client(), sleep=sleeps.append, clock=lambda: sum(sleeps)
    )
    monkeypatch.setattr(openai_ft, "OpenAIBackend", patched)
    first = run_sweep(config)

    (trial,) = first.study.trials  # the outage stops the study: no second trial starts against it
    assert trial.state == optuna.trial.TrialState.FAIL
    (job_id,) = fake.jobs
    assert fake.jobs[job_id]["status"] not in ("succeeded", "failed", "cancelled")  # trains on, unwatched
    (run,) = child_runs(config)
    assert run.info.status == "FAILED"
    assert run.data.tags["harness.error_code"] == "poll_outage"
    assert run.data.tags["harness.interrupted"] == "true"
    assert sum(sleeps) > 3600

    fake.faults.clear()  # the API is back; a later sweep (any worker) picks the study up
    use_fake(monkeypatch, fake)
    second = run_sweep(config)

    # The retry reattached to its job; the one new job is trial 2's, the second of n_trials=2.
    assert len(fake.calls("POST", JOBS)) == 2
    assert [c.json()["suffix"] for c in fake.calls("POST", JOBS)] == ["seed-rounds-t0", "seed-rounds-t2"]
    retry = second.study.trials[1]
    assert retry.state == optuna.trial.TrialState.COMPLETE
    assert retry.user_attrs[ATTR_JOB] == job_id
    assert child_runs(config)[1].data.params["openai_job_id"] == job_id


def test_network_loss_while_polling_does_not_fail_the_trial(tmp_path: Path, chat_files: tuple[Path, Path]) -> None:
    fake = FakeAPI()
    fake.fail("GET", ONE_JOB, status=0, times=15)  # longer than one call's retries
    config = make_config(tmp_path, chat_files, openai__max_retries=2)
    result = backend_for(config, fake).train(PARAMS, Recorder().ctx)
    assert result.remote_model


def test_uploads_are_reused_across_trials_and_processes(tmp_path: Path, chat_files: tuple[Path, Path]) -> None:
    fake = FakeAPI()
    config = make_config(tmp_path, chat_files)
    first = backend_for(config, fake)
    first.train(PARAMS, Recorder().ctx)
    first.train(PARAMS, Recorder().ctx)
    backend_for(config, fake).train(PARAMS, Recorder().ctx)  # a later process
    assert len(fake.calls("POST", r"/files$")) == 2
    assert len(fake.jobs) == 3


def test_parallel_trials_share_one_upload_and_run_their_own_jobs(tmp_path: Path, chat_files: tuple[Path, Path]) -> None:
    fake = FakeAPI(steps=8)
    backend = backend_for(make_config(tmp_path, chat_files, openai__budget_usd=100.0), fake)
    recorders = [Recorder() for _ in range(4)]
    for number, recorder in enumerate(recorders):
        recorder.ctx.number = number
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda r: backend.train(PARAMS, r.ctx), recorders))

    assert len({r.remote_model for r in results}) == 4
    assert len(fake.calls("POST", r"/files$")) == 2
    assert sorted(r.attrs[ATTR_JOB] for r in recorders) == sorted(fake.jobs)
    suffixes = sorted(c.json()["suffix"] for c in fake.calls("POST", JOBS))
    assert suffixes == [f"seed-rounds-t{n}" for n in range(4)]


def test_azure_uses_api_version_and_the_named_deployment(
    tmp_path: Path, chat_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azure-secret")
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://example.openai.azure.com")
    fake = FakeAPI()
    config = make_config(
        tmp_path,
        chat_files,
        backend="azure_openai",
        openai__api_version="2024-10-21",
        openai__azure_deployment="ft-{trial}",
    )
    result = backend_for(config, fake).train(PARAMS, Recorder().ctx)
    assert result.answer is not None
    result.answer([[{"role": "user", "content": "hi"}]])

    assert all(r.query.get("api-version") == "2024-10-21" for r in fake.requests)
    assert all(r.headers["api-key"] == "azure-secret" for r in fake.requests)
    (chat,) = fake.calls("POST", r"/chat/completions$")
    assert chat.raw_path == "/openai/deployments/ft-0/chat/completions"
    assert "metadata" not in fake.calls("POST", JOBS)[0].json()


# -- no network at all -----------------------------------------------------------------------


def test_dry_run_makes_no_request(
    tmp_path: Path, chat_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")  # not even credentials are needed

    def no_network(request: httpx.Request) -> httpx.Response:
        pytest.fail(f"dry run sent {request.method} {request.url}")

    # Epochs fixed: over budget whatever the sampler draws.
    config = make_config(tmp_path, chat_files, openai__budget_usd=0.01, search_space__epochs=3)
    backend = OpenAIBackend(config, http_client=httpx.Client(transport=httpx.MockTransport(no_network)))
    text = backend.dry_run(sample_params(config, 3))

    assert "no request" in text and "tokens per example (chars, estimate)" in text
    assert text.count("POST /fine_tuning/jobs") == 3
    assert '"n_epochs"' in text and '"learning_rate_multiplier": 1.0' in text
    assert "over budget" in text
    assert backend._client is None


def test_prepare_reports_facts_and_checks_credentials(
    tmp_path: Path, chat_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config(tmp_path, chat_files)
    facts = OpenAIBackend(config).prepare()
    assert facts["n_train"] == 12 and facts["n_validation"] == 4
    assert facts["token_counter"] == "chars" and facts["est_cost_per_epoch_usd"] > 0
    assert len(facts["dataset_digest"]) == 16

    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        OpenAIBackend(config).prepare()


def test_setup_problems_are_caught_before_any_request(tmp_path: Path, chat_files: tuple[Path, Path]) -> None:
    with pytest.raises(ConfigError, match="cannot train on chat data"):
        OpenAIBackend(make_config(tmp_path, chat_files, search_space__method="dpo")).load()
    with pytest.raises(ConfigError, match="no price"):
        OpenAIBackend(make_config(tmp_path, chat_files, base_model="my-model", openai__budget_usd=5.0)).load()
    few = write_jsonl(tmp_path / "few.jsonl", [chat_record("q", "a")] * 3)
    with pytest.raises(DataError, match="at least 10"):
        OpenAIBackend(make_config(tmp_path, (few, chat_files[1]))).load()
