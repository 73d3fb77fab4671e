"""A trained model as an MLflow pyfunc model: log it, load it anywhere, answer prompts.

What is stored (artifacts of the logged model):

- ``harness_model.json``: a :class:`ModelSpec`, the recipe for loading (kind, base model, system
  prompt, remote model id / Azure deployment).
- ``weights/`` (local models only): the trial's peft adapter (LoRA; the base is resolved at load time
  through :func:`harness.models.resolve`: the packaged ``smollm2``, a local dir or a hub id) or the
  full transformers model (full fine-tuning), with the tokenizer either way.

The model's code is logged by reference, not pickled (:mod:`harness.lifecycle.chat_model`, MLflow
"models from code"): :class:`ChatModel` holds no state (everything is in those artifacts), so loading
in another process needs only ``harness`` importable there, of a version that reads the model's
format (:mod:`harness.lifecycle.model_format`: refused with a clear message otherwise).
``predict`` takes a list of prompts (strings) or of chat message lists and returns one greedy
answer each; generation settings are ``params`` (see :data:`PARAMS`). Remote models answer through
chat completions, with the key read from the environment (``OPENAI_API_KEY`` / ``OPENAI_BASE_URL``,
or the ``AZURE_OPENAI_*`` variables).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import mlflow

from harness import models
from harness.lifecycle import model_format

if TYPE_CHECKING:
    from harness.config import StudyConfig

SPEC_ARTIFACT = "spec"
WEIGHTS_ARTIFACT = "weights"
SPEC_FILE = "harness_model.json"
MODEL_CODE = Path(__file__).with_name("chat_model.py")  # logged by path: MLflow copies and runs it
# Generation settings a caller may pass as ``params=``; the defaults match the trials' evaluation.
PARAMS: dict[str, Any] = {"max_new_tokens": 192, "batch_size": 8, "bf16": False}
Kind = Literal["lora", "full", "remote"]
Messages = list[dict[str, Any]]


@dataclass(frozen=True)
class ModelSpec:
    """How to load a model; stored beside its weights as JSON."""

    kind: Kind
    base_model: str  # a harness base spec: "smollm2", a local dir, a hub id; or pinned lineage (models:/N/V, run:ID)
    system_prompt: str | None = None  # the study's; added to prompts that have none, as in training
    backend: str = "local"  # local | openai | azure_openai
    remote_model: str | None = None  # the fine-tuned model id
    deployment: str | None = None  # Azure: the deployment serving it (chat completions need one)
    api_version: str | None = None  # Azure only

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        return cls(**json.loads(text))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def weights_kind(model_dir: Path) -> Kind:
    """A peft adapter dir (adapter_config.json) is LoRA; anything else is a full model."""
    return "lora" if (model_dir / "adapter_config.json").exists() else "full"


def local_spec(model_dir: Path, base_model: str, system_prompt: str | None = None) -> ModelSpec:
    return ModelSpec(kind=weights_kind(model_dir), base_model=base_model, system_prompt=system_prompt)


def as_messages(item: Any, system_prompt: str | None = None) -> Messages:
    """A prompt string or a message list as chat messages, the study's system prompt first."""
    if isinstance(item, str):
        messages = [{"role": "user", "content": item}]
    elif isinstance(item, Sequence) or hasattr(item, "tolist"):
        items = item.tolist() if hasattr(item, "tolist") else item
        messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in items]
    else:
        raise TypeError(f"a prompt is a string or a list of chat messages, got {type(item).__name__}")
    if system_prompt and (not messages or messages[0]["role"] != "system"):
        messages = [{"role": "system", "content": system_prompt}, *messages]
    return messages


def _rows(model_input: Any) -> list[Any]:
    """pyfunc hands a list over as a one-column DataFrame; accept lists and strings too."""
    if hasattr(model_input, "iloc"):
        for column in ("messages", "prompt"):
            if column in model_input.columns:
                return list(model_input[column])
        if model_input.shape[1] == 1:
            return list(model_input.iloc[:, 0])
        # A list of message lists that went through pandas: one row per conversation, padded.
        return [[m for m in row if isinstance(m, Mapping)] for row in model_input.itertuples(index=False)]
    if isinstance(model_input, str):
        return [model_input]
    return list(model_input)


def remote_spec(run: Any, config: StudyConfig) -> ModelSpec | None:
    """How to reach the remote fine-tuned model a trial run left behind; None for local weights
    (see :func:`harness.lifecycle.weights.trial_model`, which finds those on any machine)."""
    from harness.tracking import TAG_REMOTE_MODEL, TAG_TRIAL

    tags = run.data.tags
    if TAG_REMOTE_MODEL not in tags:
        return None
    backend = tags.get("harness.backend", config.backend)
    deployment = None
    openai = config.remote_settings
    if openai is not None:
        job = run.data.params.get("openai_job_id", "")
        deployment = openai.deployment(backend, int(tags.get(TAG_TRIAL, "0")), job, config.study_name)
    return ModelSpec(
        kind="remote",
        base_model=tags.get("harness.base_model", config.base_model),
        system_prompt=config.system_prompt,
        backend=backend,
        remote_model=tags[TAG_REMOTE_MODEL],
        deployment=deployment,
        api_version=openai.api_version if openai is not None else None,
    )


class LocalAnswerer:
    """Greedy batched answers from transformers weights in this process."""

    def __init__(self, model: Any, tokenizer: Any):
        self.model, self.tokenizer = model, tokenizer

    def __call__(
        self,
        prompts: list[Messages],
        max_new_tokens: int | None = None,
        batch_size: int = PARAMS["batch_size"],
        bf16: bool = PARAMS["bf16"],
    ) -> list[str]:
        """``max_new_tokens`` None: PARAMS' default (the Answerer protocol's "own default")."""
        from harness.generation import generate

        return generate(
            self.model,
            self.tokenizer,
            prompts,
            max_new_tokens=max_new_tokens or PARAMS["max_new_tokens"],
            batch_size=batch_size,
            bf16=bf16,
        )

    def sample(
        self, prompts: list[Messages], n: int, temperature: float, seed: int, max_new_tokens: int | None = None
    ) -> list[list[str]]:
        """``n`` sampled answers per prompt (``harness.answering.Sampling``): answer stability."""
        from harness.generation import ModelAnswerer

        answerer = ModelAnswerer(self.model, self.tokenizer, PARAMS["max_new_tokens"], PARAMS["batch_size"])
        return answerer.sample(prompts, n, temperature, seed, max_new_tokens)


class RemoteAnswerer:
    """Answers through chat completions (temperature 0); credentials come from the environment."""

    def __init__(self, spec: ModelSpec):
        from harness.backends.openai.jobs import Caller, jobs_client
        from harness.settings.openai import OpenAIConfig

        settings = OpenAIConfig(api_version=spec.api_version, max_retries=2)
        self.client = jobs_client(spec.backend, settings)
        self.call = Caller(settings)
        self.model = spec.deployment or spec.remote_model
        if not self.model:
            raise models.ModelError("a remote model needs a model id (or an Azure deployment)")

    def __call__(self, prompts: list[Messages], max_new_tokens: int | None = None, **_: Any) -> list[str]:
        from harness.backends.openai.jobs import make_answerer

        return make_answerer(self.client, self.call, self.model, max_new_tokens or PARAMS["max_new_tokens"])(prompts)


def load_local(spec: ModelSpec, weights: Path) -> LocalAnswerer:
    """Full weights load as they are; a LoRA adapter loads onto a fresh copy of its base, merged."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false")
    tokenizer = AutoTokenizer.from_pretrained(str(weights))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if spec.kind == "full":
        model = AutoModelForCausalLM.from_pretrained(str(weights), dtype="float32")
    else:
        from peft import PeftModel

        # Not models.load_base: that one is shared in this process, and peft would modify it.
        if models.is_tracked(spec.base_model):  # a base that is itself a fine-tune (lineage), pinned
            base = load_tracked(spec.base_model).model
        else:
            source = models.resolve(spec.base_model)
            try:
                base = AutoModelForCausalLM.from_pretrained(source.path, dtype="float32", local_files_only=offline)
            except OSError as exc:
                raise models.ModelError(f"cannot load the LoRA adapter's base {spec.base_model!r}: {exc}") from exc
        model = PeftModel.from_pretrained(base, str(weights)).merge_and_unload()
    model.config.pad_token_id = tokenizer.pad_token_id
    model.eval()
    return LocalAnswerer(model, tokenizer)


@contextmanager
def local_weights(run: Any, client: Any) -> Iterator[Path]:
    """The run's weights as a directory on this machine: its work dir when still here, else the
    uploaded copy, downloaded into a temporary directory that is removed on exit."""
    from harness.tracking import TAG_MODEL_DIR, TAG_REMOTE_MODEL, TAG_WEIGHTS

    tags, run_id = run.data.tags, run.info.run_id
    local = Path(tags[TAG_MODEL_DIR]) if tags.get(TAG_MODEL_DIR) else None
    if local is not None and local.is_dir():
        yield local
        return
    artifact = tags.get(TAG_WEIGHTS)
    if not artifact:
        where = f"{local} is not on this machine" if local else f"no {TAG_MODEL_DIR} or {TAG_REMOTE_MODEL} tag"
        raise models.ModelError(
            f"run {run_id} left no weights to load: {where}, and none were uploaded to the run"
            " (full weights are uploaded only under training.log_full_weights: best or all)"
        )
    with tempfile.TemporaryDirectory(prefix="harness-weights-") as tmp:
        yield Path(client.download_artifacts(run_id, artifact, tmp))


def load_tracked(spec: str) -> LocalAnswerer:
    """A model the MLflow store of the fluent tracking URI holds, loaded on this machine:
    ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS`` (a registered version, through its pyfunc), or
    ``run:RUN_ID`` (a trial's weights). A LoRA one comes merged into its base, which may be tracked too."""
    from harness.tracking import TAG_BASE_MODEL

    if spec.startswith("models:/"):
        model_format.check_model(spec)
        answer = mlflow.pyfunc.load_model(spec).unwrap_python_model().answer
        if not isinstance(answer, LocalAnswerer):
            raise models.ModelError(f"{spec} is a remote model: it has no weights to load here")
        return answer
    client = mlflow.MlflowClient()
    run = client.get_run(spec.removeprefix("run:"))
    with local_weights(run, client) as weights:
        return load_local(local_spec(weights, run.data.tags.get(TAG_BASE_MODEL, "smollm2")), weights)


def answerer_for(spec: ModelSpec, weights: Path | None) -> Callable[..., list[str]]:
    if spec.kind == "remote":
        return RemoteAnswerer(spec)
    if weights is None:
        raise models.ModelError(f"a {spec.kind} model needs its weights directory")
    return load_local(spec, weights)


class ChatModel(mlflow.pyfunc.PythonModel):
    """The pyfunc face of a harness model; all state comes from the logged artifacts."""

    def load_context(self, context: Any) -> None:
        # Before reading any file: a model of another format (or a pickled one, which MLflow hands
        # over without the config) is refused with both harness versions named.
        model_format.check(context.model_config, "this model")
        self.spec = ModelSpec.from_json(Path(context.artifacts[SPEC_ARTIFACT]).read_text())
        weights = context.artifacts.get(WEIGHTS_ARTIFACT)
        self.answer = answerer_for(self.spec, Path(weights) if weights else None)

    # No type hints on purpose: MLflow would derive the input schema from them and drop ``params``;
    # the schema is the explicit signature() below. MLflow's own chat models say so with this flag,
    # which also spares every command that imports this module its "add type hints" warning (one
    # no warnings filter can stop: MLflow forces it on with simplefilter("once")).
    _skip_type_hint_validation = True

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        """Answers for a list of prompts (strings or message lists); ``params`` as in PARAMS."""
        settings = {**PARAMS, **(params or {})}
        prompts = [as_messages(item, self.spec.system_prompt) for item in _rows(model_input)]
        return self.answer(
            prompts,
            max_new_tokens=int(settings["max_new_tokens"]),
            batch_size=int(settings["batch_size"]),
            bf16=bool(settings["bf16"]),
        )


def signature() -> Any:
    """Params only. No input schema on purpose: MLflow's schema enforcement turns a list of message
    lists into a 2-D DataFrame (one column per message), losing the conversations."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    return ModelSignature(
        inputs=None,
        outputs=Schema([ColSpec("string")]),
        params=ParamSchema([ParamSpec(k, _param_type(v), v) for k, v in PARAMS.items()]),
    )


def _param_type(value: Any) -> str:
    return "boolean" if isinstance(value, bool) else "long" if isinstance(value, int) else "double"


def log_model(
    spec: ModelSpec,
    weights: Path | None,
    run_id: str,
    experiment_id: str,
    tags: Mapping[str, str] | None = None,
    name: str = "model",
) -> Any:
    """Log a pyfunc model linked to ``run_id`` (the run is not reopened) in ``experiment_id``, the
    study's experiment; returns MLflow's ModelInfo.

    The LoggedModel is created here, in that experiment, because ``Model.log`` would put it in the
    fluent "active" experiment, which is ``Default`` (id 0) in a process that never set one: its
    artifacts (full weights: hundreds of MB) would land under ``./mlruns/0`` of the current
    directory instead of the study's artifact root. Uses the fluent tracking URI: call inside
    :func:`tracking_uri`.
    """
    from mlflow.models import Model

    if spec.kind != "remote" and (weights is None or not weights.is_dir()):
        raise models.ModelError(f"the trial's weights are gone: {weights}")
    client = mlflow.MlflowClient()
    run_params = client.get_run(run_id).data.params  # what Model.log copies onto a model it creates
    logged = client.create_logged_model(
        experiment_id,
        name=name,
        source_run_id=run_id,
        tags={**(tags or {}), **model_format.version_tags()},
        params=dict(run_params),
    )
    with tempfile.TemporaryDirectory() as tmp:
        spec_file = Path(tmp) / SPEC_FILE
        spec_file.write_text(spec.to_json())
        artifacts = {SPEC_ARTIFACT: str(spec_file)}
        if weights is not None and spec.kind != "remote":
            artifacts[WEIGHTS_ARTIFACT] = str(weights)
        return Model.log(
            artifact_path=None,
            name=name,
            flavor=mlflow.pyfunc,
            run_id=run_id,
            model_id=logged.model_id,
            python_model=str(MODEL_CODE),  # by reference: no pickled code in the model
            model_config=model_format.stamp(),  # what load_context checks
            metadata=model_format.stamp(),  # what a loader reads before loading anything
            artifacts=artifacts,
            signature=signature(),
            pip_requirements=model_format.requirements(),
        )


@contextmanager
def tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API (log_model, load_model, the registry's lookups) at one store, then
    put back exactly what was there. The registry URI follows unless MLFLOW_REGISTRY_URI is set."""
    from mlflow.tracking import is_tracking_uri_set

    saved = mlflow.get_tracking_uri() if is_tracking_uri_set() else None
    env = os.environ.get("MLFLOW_TRACKING_URI")  # set_tracking_uri writes it for subprocesses
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved)
        if env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = env


def load(model_uri: str, uri: str | None = None) -> Any:
    """``mlflow.pyfunc.load_model`` against ``uri`` (the tracking and registry store), once the
    model's record says this harness reads it (IncompatibleModel otherwise)."""
    if uri is None:
        model_format.check_model(model_uri)
        return mlflow.pyfunc.load_model(model_uri)
    with tracking_uri(uri):
        model_format.check_model(model_uri)
        return mlflow.pyfunc.load_model(model_uri)
