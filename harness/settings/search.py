"""Search spaces: each key fixed (a scalar), a choice (a list) or a range (a mapping).

One field per declared hyperparameter (harness.hyperparams) that the backend uses, so the schema
lives in one place and another backend's key is an error here.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any, ClassVar

from pydantic import Field, create_model, field_validator, model_validator

from harness.hyperparams import HYPERPARAMETERS, LOCAL, LOCAL_METHODS, REMOTE, REMOTE_METHODS, Hyperparameter
from harness.settings.frozen import Frozen
from harness.settings.synthesis import AUGMENTATIONS

Scalar = int | float | str | bool


class Range(Frozen):
    """A numeric range to sample from: ints when both ends are ints and no float step."""

    low: float | int
    high: float | int
    log: bool = False
    step: float | int | None = None

    @model_validator(mode="after")
    def _check(self) -> Range:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be combined")
        return self

    @property
    def is_int(self) -> bool:
        ends_int = isinstance(self.low, int) and isinstance(self.high, int)
        return ends_int and (self.step is None or isinstance(self.step, int))


# A parameter is fixed (a scalar), a choice (a list) or a range (a mapping).
ParamSpec = Annotated[Range | list[Any] | Scalar, Field(union_mode="left_to_right")]


def choice_value(value: Any) -> Any:
    """An Optuna choice: a scalar as it is; a list (a LoRA target set) as one comma-joined string."""
    return ",".join(value) if isinstance(value, list) else value


def _nonempty_choices(value: Any) -> Any:
    if isinstance(value, list) and not value:
        raise ValueError("a list of choices must not be empty")
    return value


class _SearchSpaceBase(Frozen):
    """What a trial samples. Method-specific keys are sampled only on their method's branch."""

    # The backends whose hyperparameters this space has, and the methods ``method`` picks from.
    BACKENDS: ClassVar[frozenset[str]] = frozenset()
    METHODS: ClassVar[tuple[str, ...]] = ()

    def on_branch(self, hp: Hyperparameter, method: str) -> bool:
        """Whether ``hp`` is sampled on the branch of ``method``. A key tied to methods this space
        does not offer (beta locally: dpo is the study's training.method, not a branch) is refused
        by the config in studies that do not use it, so where it is set it is sampled."""
        return hp.methods is None or method in hp.methods or not hp.methods & set(self.METHODS)

    @property
    def extra_args(self) -> dict[str, Any]:
        """TrainingArguments fields to sample (local backend only)."""
        return dict(getattr(self, "training_args", {}))

    @field_validator("*", mode="before")
    @classmethod
    def _choices(cls, value: Any) -> Any:
        return _nonempty_choices(value)

    def continuous_ranges(self) -> list[str]:
        """Keys of float ranges without a step: infinitely many values to choose from."""
        specs = {name: getattr(self, name) for name in type(self).model_fields if name != "training_args"}
        specs |= {f"training_args.{key}": spec for key, spec in self.extra_args.items()}
        return [
            f"search_space.{name}"
            for name, spec in specs.items()
            if isinstance(spec, Range) and not spec.is_int and spec.step is None
        ]

    def choices(self, name: str) -> list[Any]:
        """Every value a list or fixed key can take (a range gives [])."""
        spec = getattr(self, name)
        return [] if isinstance(spec, Range) or spec is None else spec if isinstance(spec, list) else [spec]

    @field_validator("method", check_fields=False)
    @classmethod
    def _known_methods(cls, value: Any) -> Any:
        allowed = {*LOCAL_METHODS, *REMOTE_METHODS}
        values = value if isinstance(value, list) else [value]
        bad = [v for v in values if v not in allowed]
        if isinstance(value, Range) or bad:
            raise ValueError(f"method must be one of {sorted(allowed)} or a list of them, got {value!r}")
        return value

    @field_validator("augmentation", check_fields=False)
    @classmethod
    def _known_augmentations(cls, value: Any) -> Any:
        values = value if isinstance(value, list) else [value]
        if value is not None and (isinstance(value, Range) or any(v not in AUGMENTATIONS for v in values)):
            raise ValueError(f"augmentation must be one of {list(AUGMENTATIONS)} or a list of them, got {value!r}")
        return value


def _search_field(hp: Hyperparameter) -> tuple[Any, Any]:
    spec_type = ParamSpec | None if hp.default is None else ParamSpec
    default = hp.default
    return spec_type, Field(default_factory=lambda: copy.deepcopy(default), description=hp.meaning)


class _LocalSpace(_SearchSpaceBase):
    BACKENDS: ClassVar[frozenset[str]] = LOCAL
    METHODS: ClassVar[tuple[str, ...]] = LOCAL_METHODS


class _RemoteSpace(_SearchSpaceBase):
    BACKENDS: ClassVar[frozenset[str]] = REMOTE
    METHODS: ClassVar[tuple[str, ...]] = REMOTE_METHODS


def _search_space(name: str, base: type[_SearchSpaceBase], extra: dict[str, Any]) -> type[_SearchSpaceBase]:
    """One field per declared hyperparameter the base's backends use (harness.hyperparams): the
    schema lives in one place, and a key another backend uses is an error here."""
    fields = {hp.name: _search_field(hp) for hp in HYPERPARAMETERS if base.BACKENDS & hp.backends}
    return create_model(name, __base__=base, __module__=__name__, **fields, **extra)


LocalSearchSpace = _search_space(
    "LocalSearchSpace",
    _LocalSpace,
    # Any other TrainingArguments field, e.g. weight_decay or warmup_ratio.
    {"training_args": (dict[str, ParamSpec], Field(default_factory=dict))},
)
RemoteSearchSpace = _search_space("RemoteSearchSpace", _RemoteSpace, {})
SearchSpace = LocalSearchSpace | RemoteSearchSpace
