"""A study's workers as a Kubernetes Indexed Job: one pod per worker index, the config (and, when
small, the data) in a ConfigMap, stores named in plain environment variables and every secret
taken from a Secret by reference."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.config import StudyConfig
from harness.launch.spec import (
    STORAGE_ENV,
    TRACKING_ENV,
    LaunchError,
    Workers,
    data_files,
    job_name,
    secret_names,
    worker_settings,
)

CONFIG_DIR = "/etc/harness"
DATA_DIR = f"{CONFIG_DIR}/data"
CONFIG_EXIT = 2  # `harness worker`'s exit status for bad input: running that index again cannot help
EMBED_LIMIT = 512 * 1024  # a ConfigMap holds at most 1 MiB; larger data comes in the image or a volume


@dataclass(frozen=True)
class KubernetesJob:
    """What the Job is made of besides the study's config."""

    image: str
    workers: Workers
    secret: str = "harness-secrets"
    retries_per_index: int = 3  # a worker index whose pod fails (a lost node) starts again this often
    volume: tuple[str, str] | None = None  # (PersistentVolumeClaim, mount path): data too big to embed
    namespace: str | None = None


def manifests(config: StudyConfig, job: KubernetesJob) -> list[dict[str, Any]]:
    """The ConfigMap and the Job, as plain data in the order they must be created."""
    name = job_name(config.study_name)
    files = data_files(config)
    embed = job.volume is None and sum(p.stat().st_size for p in files.values() if p.exists()) <= EMBED_LIMIT
    if embed and (missing := [str(p) for p in files.values() if not p.exists()]):
        raise LaunchError(f"data file(s) not found: {', '.join(missing)}")
    paths = {key: f"{DATA_DIR}/{key}{path.suffix}" for key, path in files.items()} if embed else {}
    settings = worker_settings(config, paths)
    data = {"config.yaml": yaml.safe_dump(settings, sort_keys=False)}
    if embed:
        data |= {f"{key}{path.suffix}": path.read_text() for key, path in files.items()}
    labels = {"app.kubernetes.io/name": "harness", "app.kubernetes.io/instance": name}
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(f"{name}-config", labels, job.namespace),
        "data": data,
    }
    items = [{"key": "config.yaml", "path": "config.yaml"}]
    items += [{"key": Path(p).name, "path": f"data/{Path(p).name}"} for p in paths.values()]
    return [config_map, _job(config, job, name, labels, items)]


def _job(
    config: StudyConfig, job: KubernetesJob, name: str, labels: Mapping[str, str], items: list[dict[str, str]]
) -> dict[str, Any]:
    volumes: list[dict[str, Any]] = [{"name": "config", "configMap": {"name": f"{name}-config", "items": items}}]
    mounts: list[dict[str, Any]] = [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}]
    if job.volume is not None:
        claim, path = job.volume
        volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": claim}})
        mounts.append({"name": "data", "mountPath": path})
    container = {
        "name": "worker",
        "image": job.image,
        "command": ["harness", "worker", f"{CONFIG_DIR}/config.yaml"],
        # Kubernetes puts the environment's values in for $(NAME): the stores are set in one place.
        "args": ["--storage", f"$({STORAGE_ENV})", "--tracking-uri", f"$({TRACKING_ENV})", "--quiet"],
        "env": _environment(config, job),
        "resources": _resources(job.workers),
        "volumeMounts": mounts,
    }
    spec = {
        "completionMode": "Indexed",
        "completions": job.workers.count,
        "parallelism": job.workers.count,
        "backoffLimitPerIndex": job.retries_per_index,
        "podFailurePolicy": {
            "rules": [
                {
                    "action": "FailIndex",
                    "onExitCodes": {"containerName": "worker", "operator": "In", "values": [CONFIG_EXIT]},
                },
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            ]
        },
        "template": {
            "metadata": {"labels": dict(labels)},
            "spec": {"restartPolicy": "Never", "containers": [container], "volumes": volumes},
        },
    }
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": _metadata(name, labels, job.namespace), "spec": spec}


def _environment(config: StudyConfig, job: KubernetesJob) -> list[dict[str, Any]]:
    threads = str(max(1, int(job.workers.cpus)))
    plain = {STORAGE_ENV: config.storage, TRACKING_ENV: config.mlflow.tracking_uri, "OMP_NUM_THREADS": threads}
    plain["PYTHONUNBUFFERED"] = "1"
    secrets = [
        {"name": env, "valueFrom": {"secretKeyRef": {"name": job.secret, "key": env, "optional": True}}}
        for env in secret_names(config)
    ]
    return [{"name": key, "value": value} for key, value in plain.items()] + secrets


def _resources(workers: Workers) -> dict[str, dict[str, str]]:
    resources: dict[str, dict[str, str]] = {"requests": {"cpu": f"{workers.cpus:g}"}}
    if workers.gpus:
        resources["limits"] = {"nvidia.com/gpu": str(workers.gpus)}
    return resources


def _metadata(name: str, labels: Mapping[str, str], namespace: str | None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": dict(labels)}
    if namespace is not None:
        metadata["namespace"] = namespace
    return metadata


def to_yaml(documents: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(documents, sort_keys=False)


def submit(documents: list[dict[str, Any]], namespace: str | None) -> list[str]:
    """Create the objects in the cluster the kubeconfig (or the pod's service account) names."""
    try:
        from kubernetes import client, config, utils
    except ImportError:
        raise LaunchError("creating the Job needs the Kubernetes client: pip install 'harness[k8s]'") from None

    settings = client.Configuration()  # this call's own: the client's global default is read at import
    try:
        # KUBECONFIG as it is now (the client's default is the one it had when first imported).
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG"), client_configuration=settings)
    except (config.ConfigException, OSError) as error:
        try:
            config.load_incluster_config(client_configuration=settings)
        except config.ConfigException:
            raise LaunchError(f"no Kubernetes cluster to submit to: {error}") from None
    try:
        created = utils.create_from_yaml(
            client.ApiClient(settings), yaml_objects=documents, namespace=namespace or "default"
        )
    except utils.FailToCreateError as error:
        reasons = "; ".join(f"{e.status} {e.reason}: {e.body}" for e in error.api_exceptions)
        raise LaunchError(f"the cluster refused the job: {reasons}") from None
    except Exception as error:  # urllib3's connection errors and the like: the cluster did not answer
        raise LaunchError(f"the Kubernetes API did not answer: {error}") from None
    return [f"{o.kind}/{o.metadata.name}" for group in created for o in group]
