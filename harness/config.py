"""Study configuration: frozen pydantic models, validated once at load.

Errors name the key's dotted path (``search_space.dropout.high``) and the file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from harness.hyperparams import BY_NAME
from harness.metrics import (
    CONSISTENCY,
    EVAL_GENERATION_SECONDS,
    EVAL_MIRROR_SECONDS,
    EVAL_SECONDS,
    HELDOUT,
    JUDGE,
    JUDGE_MISSING,
    STUDY_SPLITS,
    MetricName,
    try_parse,
)
from harness.redaction import masked
from harness.settings.confirm import ConfirmConfig, check_confirm
from harness.settings.enqueue import Entry, check_enqueue
from harness.settings.evaluation import COMPOSITE, EvaluationConfig
from harness.settings.frozen import Frozen
from harness.settings.loading import ConfigError, apply_override, format_errors, parse_override, resolve_paths
from harness.settings.openai import OpenAIConfig
from harness.settings.pruning import (
    PrunerConfig,
    checkpoint_metrics,
    during_training_problem,
    multi_objective_problem,
    wilcoxon_problem,
)
from harness.settings.search import LocalSearchSpace, ParamSpec, Range, RemoteSearchSpace, SearchSpace
from harness.settings.sections import (
    DPO_METRICS,
    TRAINING_METRICS,
    DataConfig,
    MlflowConfig,
    ObjectiveConfig,
    ObjectiveTerm,
    PromotionConfig,
    SamplerConfig,
    checked_metrics,
)
from harness.settings.training import Precision, TrainingConfig
from harness.settings.workers import WorkersConfig

# Re-exported: the sections and search-space types are part of the config's public surface.
__all__ = [
    "DPO_METRICS",
    "TRAINING_METRICS",
    "ConfigError",
    "DataConfig",
    "LocalSearchSpace",
    "LocalStudyConfig",
    "MlflowConfig",
    "ObjectiveConfig",
    "ObjectiveTerm",
    "ParamSpec",
    "PromotionConfig",
    "Range",
    "RemoteSearchSpace",
    "RemoteStudyConfig",
    "SamplerConfig",
    "SearchSpace",
    "StudyConfig",
    "TrainingConfig",
    "load_config",
    "parse_override",
    "parse_study",
]


# A study's name is a directory under training.work_dir (and a registry name): one safe path part.
STUDY_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


class _StudyBase(Frozen):
    """What every backend's study has; each backend's config adds its own section and rules."""

    study_name: str = Field(min_length=1)
    base_model: str = "smollm2"
    data: DataConfig
    system_prompt: str | None = None
    max_seq_length: int = Field(default=512, ge=16)
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    pruner: PrunerConfig = Field(default_factory=PrunerConfig)
    n_trials: int | None = Field(default=4, ge=1)
    timeout_minutes: float | None = Field(default=None, gt=0)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    storage: str = "sqlite:///mlruns/optuna.db"
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)
    workers: WorkersConfig = Field(default_factory=WorkersConfig)
    # The best configurations trained again with further seeds once the search ends (None: never).
    confirm: ConfirmConfig | None = None
    # Known-good configurations the search tries first (harness.settings.enqueue): warm starts.
    enqueue: list[Entry] = Field(default_factory=list)

    # Subclasses say what they produce.
    METRICS_KEY: ClassVar[str] = "local"

    @field_validator("study_name")
    @classmethod
    def _safe_study_name(cls, value: str) -> str:
        if not STUDY_NAME.fullmatch(value):
            raise ValueError(
                f"{value!r} cannot name the study: it names a directory under training.work_dir, so use"
                " letters, digits, '-', '_' and '.' only, not starting with a dot"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> _StudyBase:
        if self.n_trials is None and self.timeout_minutes is None:
            raise ValueError("set n_trials, timeout_minutes or both, or the study never stops")
        continuous = self.search_space.continuous_ranges()
        if self.sampler.type == "grid" and continuous:
            raise ValueError(
                f"sampler.type: grid tries every combination, but {', '.join(continuous)} "
                f"{'is a continuous range' if len(continuous) == 1 else 'are continuous ranges'}: "
                "give each a list of values or a step (not with log: true), or use another sampler"
            )
        self._check_search_space()
        self._check_objective()
        self._check_during_training()
        check_confirm(self.confirm, multi_objective=self.objective.is_multi, n_trials=self.n_trials)
        check_enqueue(self.search_space, self.enqueue, self.n_trials)
        return self

    def _check_search_space(self) -> None:
        backend = str(self.backend)  # type: ignore[attr-defined]
        methods, offered = self.search_space.choices("method"), self.search_space.METHODS
        if bad := [m for m in methods if m not in offered]:
            raise ValueError(
                f"search_space.method: {', '.join(map(str, bad))} not available on the {backend} backend"
                f" (it takes {', '.join(offered)})"
            )
        # LoRA keys on a study fixed to full fine-tuning are left unsampled (an override switching
        # the method should not need three more); beta without dpo is a study that cannot mean it.
        in_effect = {*methods, *self._study_methods()}
        for name in self.search_space.model_fields_set - {"lora_rank", "lora_alpha", "lora_target_modules"}:
            hp = BY_NAME.get(name)
            unset = getattr(self.search_space, name) is None  # as a config read back from its run has it
            if hp is not None and hp.methods and not unset and not set(hp.methods) & in_effect:
                key = "method" if set(hp.methods) & set(offered) else "training.method"
                raise ValueError(f"search_space.{name}: only used with {key} {'/'.join(sorted(hp.methods))}")

    def _study_methods(self) -> set[str]:
        """Methods fixed for the whole study beside the sampled ones (local: training.method)."""
        return set()

    def _check_objective(self) -> None:
        produced = self.produced_metrics()
        key = "objective.metric" if not (self.objective.weights or self.objective.metrics) else "objective"
        for name in self.objective.inputs:
            if name not in produced and not self._judge_metric(name):
                raise ValueError(
                    f"{key}: no trial of this study produces {name!r}; it produces "
                    + ", ".join(sorted(n for n in produced if not (m := try_parse(n)) or m.suffix is None))
                )
        judge = self.evaluation.judge
        if self.objective.judge_inputs and not judge.check and not judge.trust_unchecked:
            raise ValueError(
                f"{key}: reads the judge ({', '.join(self.objective.judge_inputs)}), but evaluation.judge.check"
                " is false, so nothing shows the judge ranks answers better than chance: turn the check on, or"
                " set evaluation.judge.trust_unchecked: true to use it unchecked (its runs are tagged so)"
            )

    def _check_during_training(self) -> None:
        """What measuring the objective at checkpoints (pruning and keeping the best on it) needs."""
        problem = multi_objective_problem(self.objective, self.pruner)
        problem = problem or wilcoxon_problem(self.objective, self.evaluation.during_training.enabled, self.pruner)
        problem = problem or during_training_problem(
            self.objective, self.evaluation, self.checkpoint_metrics(), self._judge_metric
        )
        if problem:
            raise ValueError(problem)

    def checkpoint_metrics(self) -> set[str]:
        """Metrics a checkpoint measures: eval loss, and held-out means of the evaluation's scorers."""
        return checkpoint_metrics(self.produced_metrics(), self.evaluation.enabled)

    @property
    def keep(self) -> str:
        """Which checkpoint a trial keeps (training.keep, defaulted): best on the objective, or last."""
        chosen = self.local_training.keep if self.local_training is not None else None
        return chosen or ("best" if self.evaluation.during_training.enabled else "last")

    @property
    def judge_unchecked(self) -> bool:
        """Whether the objective reads a judge that was never checked (allowed by trust_unchecked)."""
        return bool(self.objective.judge_inputs) and not self.evaluation.judge.check

    def produced_metrics(self) -> set[str]:
        """Final metrics every trial logs: the backend's training metrics and the evaluation's."""
        names = set(TRAINING_METRICS[self.METRICS_KEY])
        settings = self.evaluation
        if not settings.enabled:
            return names
        scorers = [s for s in settings.scorers if s != JUDGE] + ([COMPOSITE] if settings.composite_scorers else [])
        if JUDGE in settings.scorers:
            scorers += [JUDGE, JUDGE_MISSING]
        names |= {EVAL_SECONDS, EVAL_GENERATION_SECONDS}
        if self.mlflow.genai_mirror:
            names.add(EVAL_MIRROR_SECONDS)
        for split in STUDY_SPLITS:
            names |= {key for s in scorers for key in MetricName(CONSISTENCY, split, s).logged_keys()}
            names |= checked_metrics(split, sampled=settings.stability is not None and split == HELDOUT)
        return names

    def _judge_metric(self, name: str) -> bool:
        # Per-criterion judge scores are named by the rubric, read only when the judge starts.
        parsed = try_parse(name)
        return (
            JUDGE in self.evaluation.scorers
            and parsed is not None
            and parsed.family == CONSISTENCY
            and parsed.split in STUDY_SPLITS
            and parsed.is_judge
        )

    @property
    def registry_name(self) -> str:
        return self.mlflow.registry_model_name or self.study_name

    @property
    def parallel_trials(self) -> int:
        """Trials that may run at once in one process (local trials share one model in memory)."""
        return 1

    # What the backend means outside harness/backends: code reads these, never the backend's name.
    @property
    def local_training(self) -> TrainingConfig | None:
        """The ``training`` section where trials train on this machine; None for remote jobs."""
        return None

    @property
    def base_is_weights(self) -> bool:
        """Whether base_model is weights this machine loads (a remote study's names a hosted model)."""
        return self.local_training is not None

    @property
    def precision(self) -> Precision:
        """How this machine runs the study's models: training.precision, else its own choice."""
        return "auto" if self.local_training is None else self.local_training.precision

    @property
    def remote_settings(self) -> OpenAIConfig | None:
        """The ``openai`` section where trials are remote fine-tuning jobs; None otherwise."""
        return None

    @property
    def chat_service(self) -> str:
        """The service that answers a hosted model id (``openai:MODEL``): OpenAI, or the study's own."""
        return "openai"


class LocalStudyConfig(_StudyBase):
    """transformers + peft on this machine."""

    backend: Literal["local"] = "local"
    search_space: LocalSearchSpace = Field(default_factory=LocalSearchSpace)  # type: ignore[valid-type]
    training: TrainingConfig = Field(default_factory=TrainingConfig)

    @property
    def local_training(self) -> TrainingConfig:
        return self.training

    def _study_methods(self) -> set[str]:
        return {self.training.method}

    def _check_search_space(self) -> None:
        super()._check_search_space()
        augmented = [c for c in self.search_space.choices("augmentation") if c != "none"]
        if self.training.method == "dpo" and augmented:  # it rewrites chat examples; DPO trains on pairs
            raise ValueError(
                f"search_space.augmentation: {', '.join(augmented)} not available with training.method dpo"
            )
        owned = self.training.harness_args
        if taken := [key for key in self.search_space.training_args if key in owned]:
            raise ValueError("\n  ".join(_owned_arg(key, owned[key]) for key in taken))

    def produced_metrics(self) -> set[str]:
        dpo = set(DPO_METRICS) if self.training.method == "dpo" else set()
        return super().produced_metrics() | dpo

    def _check_during_training(self) -> None:
        super()._check_during_training()
        if self.training.method == "dpo" and self.evaluation.during_training.enabled:
            raise ValueError(
                "evaluation.during_training: not available with training.method dpo yet (TRL's trainer patches"
                " the model's forward while it trains, so it cannot answer mid-training); turn it off"
            )
        if self.training.keep == "best" and not self.evaluation.during_training.enabled:
            raise ValueError(
                "training.keep: best picks the checkpoint that is best on the objective, which only"
                " evaluation.during_training measures: turn it on, or keep: last"
            )


def _owned_arg(key: str, owner: str) -> str:
    """Why ``search_space.training_args.<key>`` is refused: the harness sets it, from ``owner``."""
    where = f"search_space.training_args.{key}: the harness sets {key}"
    if owner.startswith("the harness"):
        return f"{where} itself{owner.removeprefix('the harness')}; take it out of training_args"
    return f"{where} from {owner}; take it out of training_args and change {owner} instead"


class RemoteStudyConfig(_StudyBase):
    """OpenAI or Azure OpenAI fine-tuning jobs."""

    backend: Literal["openai", "azure_openai"]
    search_space: RemoteSearchSpace = Field(default_factory=RemoteSearchSpace)  # type: ignore[valid-type]
    openai: OpenAIConfig = Field(default_factory=OpenAIConfig)

    METRICS_KEY: ClassVar[str] = "remote"

    @property
    def parallel_trials(self) -> int:
        return self.openai.max_concurrent_jobs

    def _check_during_training(self) -> None:
        if self.evaluation.during_training.enabled:
            raise ValueError(
                "evaluation.during_training: not available on the OpenAI backends yet: the harness does not"
                " answer from a fine-tuning job's per-epoch checkpoints, so nothing would be measured at them;"
                " turn it off (pruning then reads the job's eval loss)"
            )
        super()._check_during_training()

    @property
    def remote_settings(self) -> OpenAIConfig:
        return self.openai

    @property
    def chat_service(self) -> str:
        return self.backend


def _backend_tag(value: Any) -> str:
    backend = value.get("backend", "local") if isinstance(value, dict) else getattr(value, "backend", "local")
    return {"local": "local", "openai": "remote", "azure_openai": "remote"}.get(backend, str(backend))


# ``backend`` picks the config class: each backend owns its settings, methods and keys.
StudyConfig = Annotated[
    Annotated[LocalStudyConfig, Tag("local")] | Annotated[RemoteStudyConfig, Tag("remote")],
    Discriminator(_backend_tag),
]
_STUDY_ADAPTER: TypeAdapter[Any] = TypeAdapter(StudyConfig)


def parse_study(data: Any) -> LocalStudyConfig | RemoteStudyConfig:
    """Validate a study config from plain data (YAML, JSON); raises pydantic's ValidationError."""
    return _STUDY_ADAPTER.validate_python(data)


def load_config(path: Path, overrides: list[str] | None = None) -> LocalStudyConfig | RemoteStudyConfig:
    """Read YAML, apply ``key=value`` overrides, validate once. Raises ConfigError."""
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    for text in overrides or []:
        raw = apply_override(raw, *parse_override(text))
    raw = resolve_paths(raw, path.parent)
    try:
        return parse_study(raw)
    except ValidationError as exc:
        source = f"{path} (with overrides {masked(overrides)})" if overrides else str(path)
        raise ConfigError(format_errors(source, exc)) from None
