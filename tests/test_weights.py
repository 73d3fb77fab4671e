"""Trial weights reachable from anywhere: per-run work dirs, uploads by policy, registration and
eval from the uploaded copy, and logged models in the study's own experiment and artifact root."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState, create_trial

from harness.backends.protocol import TrainResult, TrialContext
from harness.config import ObjectiveConfig, StudyConfig, load_config, parse_study
from harness.lifecycle import registry, serving
from harness.lifecycle.evaluate import evaluate_model
from harness.lifecycle.weights import WEIGHTS_PATH, best_so_far, keep_weights, uploads
from harness.models import ModelError
from harness.search_space import TrialParams
from harness.storage import ATTR_RUN_ID
from harness.study.trial import TrialRunner
from harness.tracking import TAG_MODEL_DIR, TAG_WEIGHTS, Tracker, default_artifact_location
from tests.test_registry import make_baseline_run, make_trial_run, registry_config


def test_adapters_always_upload_full_weights_by_policy() -> None:
    assert uploads("lora", "none", best_so_far=False)
    assert uploads("full", "best", best_so_far=True) and not uploads("full", "best", best_so_far=False)
    assert uploads("full", "all", best_so_far=False)
    assert not uploads("full", "none", best_so_far=True)


def _done(number: int, values: list[float]) -> Any:
    trial = create_trial(state=TrialState.COMPLETE, values=values)
    trial.number = number
    return trial


def test_best_so_far_uses_the_rule_that_picks_the_best_trial() -> None:
    loss = ObjectiveConfig(metric="eval_loss")
    done = [_done(0, [0.5]), _done(1, [0.7])]
    assert best_so_far([], 0, 0.9, loss)  # the first complete trial is the best so far
    assert best_so_far(done, 2, 0.4, loss) and not best_so_far(done, 2, 0.6, loss)
    assert not best_so_far(done, 2, 0.5, loss)  # a tie goes to the earlier trial, which has its weights
    score = ObjectiveConfig(metric="consistency/heldout/rouge_l", direction="maximize")
    assert best_so_far(done, 2, 0.6, score) is False and best_so_far(done, 2, 0.8, score)
    assert not best_so_far([], 0, float("nan"), loss) and not best_so_far([], 0, float("inf"), loss)


class WeightsBackend:
    """Writes a weights dir per trial, as the local backend does: (method, eval_loss) per trial."""

    def __init__(self, work: Path, script: list[tuple[str, float]]):
        self.work, self.script = work, script

    def prepare(self) -> dict[str, Any]:
        return {}

    def train(self, params: TrialParams, ctx: TrialContext) -> TrainResult:
        method, loss = self.script[ctx.number]
        final = self.work / ctx.run_id / "final"
        final.mkdir(parents=True)
        (final / ("adapter_config.json" if method == "lora" else "config.json")).write_text("{}")
        (final / "weights.safetensors").write_bytes(b"w" * 1000)
        return TrainResult(metrics={"eval_loss": loss}, params={}, model_dir=final)


def sweep_with(tmp_path: Path, policy: str, script: list[tuple[str, float]]) -> list[Any]:
    cfg = parse_study(
        {
            "study_name": "s",
            "data": {"train_file": "x.jsonl"},
            "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/m.db"},
            "training": {"log_full_weights": policy},
        }
    )
    tracker = Tracker(cfg.mlflow.tracking_uri, "s")
    study = optuna.create_study()
    runner = TrialRunner(cfg, WeightsBackend(tmp_path / "work", script), tracker, tracker.parent_run("s", {}), {})
    study.optimize(runner, n_trials=len(script))
    client = MlflowClient(cfg.mlflow.tracking_uri)
    return [client.get_run(t.user_attrs[ATTR_RUN_ID]) for t in study.trials]


@pytest.mark.parametrize(
    ("policy", "uploaded"),
    [("best", [True, True, False, True]), ("all", [True] * 4), ("none", [False, True, False, False])],
)
def test_complete_trials_upload_adapters_and_full_weights_by_policy(
    tmp_path: Path, policy: str, uploaded: list[bool]
) -> None:
    # full 0.5 (best so far), lora 0.9, full 0.7 (not the best), full 0.3 (best again)
    script = [("full", 0.5), ("lora", 0.9), ("full", 0.7), ("full", 0.3)]
    runs = sweep_with(tmp_path, policy, script)
    client = MlflowClient(f"sqlite:///{tmp_path}/m.db")
    assert [TAG_WEIGHTS in r.data.tags for r in runs] == uploaded
    for run, was_uploaded in zip(runs, uploaded, strict=True):
        # One work dir per MLflow run id: a study name used again never overwrites older weights.
        assert run.data.tags[TAG_MODEL_DIR] == str((tmp_path / "work" / run.info.run_id / "final").resolve())
        if was_uploaded:
            names = {Path(f.path).name for f in client.list_artifacts(run.info.run_id, WEIGHTS_PATH)}
            assert "weights.safetensors" in names and names & {"adapter_config.json", "config.json"}


def lora_adapter(tiny_llama_dir: Path, target: Path) -> Path:
    """A real (untrained) peft adapter on the tiny Llama, saved like a trial's final dir."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir))
    lora = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    get_peft_model(base, lora).save_pretrained(target)
    AutoTokenizer.from_pretrained(str(tiny_llama_dir)).save_pretrained(target)
    return target


def uploaded_trial(config: StudyConfig, number: int, loss: float, weights: Path) -> str:
    """A finished trial run whose weights were uploaded, and whose local work dir is then deleted."""
    run_id = make_trial_run(config, number, {"eval_loss": loss}, model_dir=weights)
    keep_weights(Tracker(config.mlflow.tracking_uri, config.study_name), run_id, weights, "all", best=True)
    shutil.rmtree(weights)
    return run_id


@pytest.mark.parametrize("kind", ["full", "lora"])
def test_register_load_and_eval_from_the_run_when_the_work_dir_is_gone(
    study_yaml: Path, tiny_llama_dir: Path, tmp_path: Path, kind: str
) -> None:
    config = registry_config(study_yaml)
    work = tmp_path / "work" / "tiny" / kind / "final"
    if kind == "full":
        shutil.copytree(tiny_llama_dir, work)
    else:
        lora_adapter(tiny_llama_dir, work)
    run_id = uploaded_trial(config, 0, 1.0, work)
    assert not work.exists()

    evaluated = evaluate_model(config, run_id)  # harness eval RUN_ID
    assert evaluated.metrics["consistency/heldout/rouge_l"] >= 0

    version = registry.register(config, run_id)
    assert version.tags["harness.model_kind"] == kind
    model = serving.load(f"models:/tiny/{version.version}", config.mlflow.tracking_uri)
    answers = model.predict(["What does git stash do?"], params={"max_new_tokens": 3})
    assert len(answers) == 1 and isinstance(answers[0], str)


def test_weights_neither_here_nor_uploaded_say_so(study_yaml: Path, tmp_path: Path) -> None:
    config = registry_config(study_yaml)
    run_id = make_trial_run(config, 0, {"eval_loss": 1.0}, model_dir=tmp_path / "gone" / "final")
    with pytest.raises(ModelError, match="is not on this machine, and none were uploaded"):
        registry.register(config, run_id)


def test_registering_writes_nothing_under_the_cwd_and_stays_in_the_study_experiment(
    study_yaml: Path, tiny_llama_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # before the store exists: Default's artifact root would be ./mlruns/0 here
    config = registry_config(study_yaml)
    assert str(tmp_path / "mlruns") in config.mlflow.tracking_uri  # the store is elsewhere
    work = tmp_path / "work" / "tiny" / "run" / "final"
    shutil.copytree(tiny_llama_dir, work)
    run_id = uploaded_trial(config, 0, 1.0, work)
    make_baseline_run(config, {"eval_loss": 2.0})  # the first champion must beat the untuned baseline
    assert registry.promote(config, run_id).promoted
    model = serving.load("models:/tiny@champion", config.mlflow.tracking_uri)
    assert len(model.predict(["hi"], params={"max_new_tokens": 2})) == 1

    assert list(cwd.iterdir()) == []
    client = MlflowClient(config.mlflow.tracking_uri)
    version = client.get_model_version_by_alias("tiny", "champion")
    logged = client.get_logged_model(version.source.removeprefix("models:/"))
    study_experiment = client.get_experiment_by_name("tiny")
    assert logged.experiment_id == study_experiment.experiment_id != "0"
    root = default_artifact_location(config.mlflow.tracking_uri)
    assert study_experiment.artifact_location == root and logged.artifact_location.startswith(root)


@pytest.mark.slow
def test_sweep_trials_leave_per_run_dirs_and_the_best_registers_from_its_run(study_yaml: Path, tmp_path: Path) -> None:
    from harness.lifecycle.retention import apply_retention
    from harness.lifecycle.selection import select_best
    from harness.study import run_sweep
    from tests.test_registry import FAST_EVAL

    # A grid over the method: one LoRA and one full trial, in an order the grid picks.
    fixed = ["search_space.lr_multiplier=1.0", "search_space.dropout=0.0", "search_space.batch_size=2"]
    overrides = [*FAST_EVAL, *fixed, "sampler.type=grid", "n_trials=2", "mlflow.register_best=false"]
    overrides.append("training.keep_local=1")
    config = load_config(study_yaml, overrides)
    study = run_sweep(config).study
    client = MlflowClient(config.mlflow.tracking_uri)
    complete = []
    for t in sorted(study.get_trials(), key=lambda t: t.number):
        run = client.get_run(t.user_attrs[ATTR_RUN_ID])
        assert run.data.tags[TAG_MODEL_DIR] == str(tmp_path / "work" / "tiny" / run.info.run_id / "final")
        if t.state != TrialState.COMPLETE:
            continue
        best = select_best([*complete, t], config.objective).number == t.number
        assert (TAG_WEIGHTS in run.data.tags) == (t.params["method"] == "lora" or best), t.params
        complete.append(t)

    assert {t.params["method"] for t in complete} == {"lora", "full"}  # both kinds covered
    # The sweep applied retention when it ended (keep_local=1): only the best trial's dir stays.
    parent = client.get_run(study.user_attrs["mlflow_run_id"])
    assert parent.data.metrics["local_weights_freed_mb"] > 0
    assert apply_retention(config, study) == 0  # nothing more to free
    best_run = select_best(complete, config.objective).user_attrs[ATTR_RUN_ID]
    assert [p.name for p in (tmp_path / "work" / "tiny").iterdir()] == [best_run]
    shutil.rmtree(tmp_path / "work")  # another machine: no local weights at all
    # The best trial, registered from its run's copy (forced: whether the tiny model beats its
    # untuned baseline is the promotion rule's business, tested in tests/test_registry.py).
    assert registry.promote(config, force=True).promoted
    model = serving.load("models:/tiny@champion", config.mlflow.tracking_uri)
    assert len(model.predict(["What does git stash do?"], params={"max_new_tokens": 3})) == 1
