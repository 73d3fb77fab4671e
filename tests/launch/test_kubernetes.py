"""The Indexed Job and its ConfigMap: read back into the kubernetes client's typed models with no
field unknown to them, one pod per worker, stores in the environment, secrets only by reference."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml
from kubernetes.client import V1ConfigMap, V1Job

from harness.config import parse_study
from harness.launch.kubernetes import KubernetesJob, manifests, submit, to_yaml
from harness.launch.spec import LaunchError, Workers
from tests.launch.clusters import STORAGE, TRACKING, cluster_config


def typed(document: dict[str, Any], model: Any) -> Any:
    """The document as the client's model, which forbids fields it does not know; none of the
    document's values was changed on the way (a number where the API wants a string, say)."""
    typed = model.model_validate(document)
    assert typed.model_dump(by_alias=True, exclude_none=True) == document
    return typed


def documents(tmp_path: Path, job: KubernetesJob, **settings: Any) -> tuple[V1ConfigMap, V1Job]:
    text = to_yaml(manifests(cluster_config(tmp_path, **settings), job))
    config_map, job_doc = yaml.safe_load_all(text)
    return typed(config_map, V1ConfigMap), typed(job_doc, V1Job)


def test_an_indexed_job_with_one_pod_per_worker_and_a_gpu_each(tmp_path: Path) -> None:
    _, job = documents(tmp_path, KubernetesJob("registry.example/harness:1", Workers(4, 2, 1)))
    assert job.metadata.name == "harness-tiny-study"
    spec = job.spec
    assert (spec.completion_mode, spec.completions, spec.parallelism) == ("Indexed", 4, 4)
    assert spec.backoff_limit_per_index == 3
    assert spec.template.spec.restart_policy == "Never"
    (container,) = spec.template.spec.containers
    assert container.image == "registry.example/harness:1"
    assert container.resources.limits == {"nvidia.com/gpu": "1"} and container.resources.requests == {"cpu": "2"}
    assert container.command == ["harness", "worker", "/etc/harness/config.yaml"]
    assert container.args == ["--storage", "$(HARNESS_STORAGE)", "--tracking-uri", "$(MLFLOW_TRACKING_URI)", "--quiet"]
    plain = {e.name: e.value for e in container.env if e.value_from is None}
    assert plain["HARNESS_STORAGE"] == STORAGE and plain["MLFLOW_TRACKING_URI"] == TRACKING
    assert plain["OMP_NUM_THREADS"] == "2"
    rules = spec.pod_failure_policy.rules
    assert rules[0].action == "FailIndex" and rules[0].on_exit_codes.values == [2]  # bad input: not retried


def test_every_secret_comes_from_the_secret_by_reference(tmp_path: Path) -> None:
    judge = {"judge": {"kind": "openai", "model": "gpt-4o-mini", "api_key_env": "JUDGE_KEY"}}
    _, job = documents(
        tmp_path, KubernetesJob("img", Workers(2), secret="study-keys"), evaluation={"enabled": False, **judge}
    )
    (container,) = job.spec.template.spec.containers
    by_ref = {e.name: e.value_from.secret_key_ref for e in container.env if e.value_from is not None}
    assert {"HARNESS_STORAGE_PASSWORD", "OPENAI_API_KEY", "MLFLOW_TRACKING_PASSWORD", "JUDGE_KEY"} <= set(by_ref)
    assert {(ref.name, ref.key == name) for name, ref in by_ref.items()} == {("study-keys", True)}
    assert not [e for e in container.env if "KEY" in e.name or "PASSWORD" in e.name if e.value is not None]


def test_the_config_map_holds_the_config_and_the_data_it_names(tmp_path: Path) -> None:
    config_map, job = documents(tmp_path, KubernetesJob("img", Workers(2)))
    config = parse_study(yaml.safe_load(config_map.data["config.yaml"]))
    assert config.data.train_file == Path("/etc/harness/data/train_file.jsonl")
    assert config.data.validation_file == Path("/etc/harness/data/validation_file.jsonl")
    assert config_map.data["train_file.jsonl"] == (tmp_path / "train.jsonl").read_text()
    assert config.storage == STORAGE and config.study_name == "Tiny_Study" and config.n_trials == 4
    (volume,) = job.spec.template.spec.volumes
    assert volume.config_map.name == config_map.metadata.name
    assert {i.path for i in volume.config_map.items} == {
        "config.yaml",
        "data/train_file.jsonl",
        "data/validation_file.jsonl",
    }


def test_data_on_a_volume_keeps_the_config_paths_and_mounts_the_claim(tmp_path: Path) -> None:
    config_map, job = documents(tmp_path, KubernetesJob("img", Workers(1), volume=("study-data", "/data")))
    assert set(config_map.data) == {"config.yaml"}
    assert "nvidia.com/gpu" not in (job.spec.template.spec.containers[0].resources.limits or {})
    claims = [v.persistent_volume_claim.claim_name for v in job.spec.template.spec.volumes if v.persistent_volume_claim]
    assert claims == ["study-data"]


def test_a_password_in_a_url_is_refused_not_written_into_the_job(tmp_path: Path) -> None:
    with pytest.raises(LaunchError, match="HARNESS_STORAGE_PASSWORD") as refused:
        manifests(
            cluster_config(tmp_path, storage="postgresql://postgres:hunter2@10.0.0.5/studies"),
            KubernetesJob("img", Workers(1)),
        )
    assert "hunter2" not in str(refused.value)


def test_the_model_check_refuses_a_field_kubernetes_does_not_know(tmp_path: Path) -> None:
    _, job = manifests(cluster_config(tmp_path), KubernetesJob("img", Workers(1)))
    job["spec"]["completionsMode"] = "Indexed"  # a misspelling the API server would drop or refuse
    with pytest.raises(pydantic.ValidationError, match="completionsMode"):
        V1Job.model_validate(job)


def test_without_the_kubernetes_client_submitting_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "kubernetes", None)
    with pytest.raises(LaunchError, match=r"pip install 'harness\[k8s\]'"):
        submit([], None)
