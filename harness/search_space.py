"""Pure mapping from a config's search space to one trial's parameters."""

from __future__ import annotations

from typing import Any, Protocol

from harness.config import Range, SearchSpace
from harness.hyperparams import HYPERPARAMETERS, Hyperparameter, TrialParams
from harness.settings.search import choice_value

__all__ = ["TrialParams", "suggest", "suggest_value"]


class Suggester(Protocol):
    """The part of optuna.Trial used here (FixedTrial and Trial both satisfy it)."""

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float: ...

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


def suggest_value(trial: Suggester, name: str, spec: Any) -> Any:
    """Sample one parameter: a Range is sampled, a list is a choice, a scalar is fixed."""
    if isinstance(spec, Range):
        if spec.is_int:
            step = int(spec.step) if spec.step is not None else 1
            return trial.suggest_int(name, int(spec.low), int(spec.high), step=step, log=spec.log)
        return trial.suggest_float(name, float(spec.low), float(spec.high), step=spec.step, log=spec.log)
    if isinstance(spec, list):
        if len(spec) == 1:
            return choice_value(spec[0])
        return trial.suggest_categorical(name, [choice_value(v) for v in spec])
    return spec


def suggest(trial: Suggester, space: SearchSpace, backend: str | None = None) -> TrialParams:
    """Sample every hyperparameter the space declares; method-specific ones (LoRA keys, DPO beta)
    only on their method's branch, so they never show up in the other branch's trials.

    ``backend``, when given, is the study's: a space of another backend's keys is refused.
    """
    if backend is not None and backend not in space.BACKENDS:
        raise ValueError(f"a {backend} study cannot sample {type(space).__name__}")
    method = str(suggest_value(trial, "method", space.method))
    values: dict[str, Any] = {"method": method}
    for hp in HYPERPARAMETERS:
        spec = getattr(space, hp.name, None)  # a backend's search space has only its own keys
        if hp.name == "method" or spec is None or not space.on_branch(hp, method):
            continue
        values[hp.name] = _typed(hp, _targets(trial, spec) if hp.type is tuple else suggest_value(trial, hp.name, spec))
    training_args = {key: suggest_value(trial, f"training_args.{key}", spec) for key, spec in space.extra_args.items()}
    return TrialParams(training_args=training_args, **values)


def _targets(trial: Suggester, spec: Any) -> Any:
    # A flat list of module names is one fixed set; a list of lists is a choice between sets.
    fixed_set = isinstance(spec, list) and all(isinstance(v, str) for v in spec)
    return spec if fixed_set else suggest_value(trial, "lora_target_modules", spec)


def _typed(hp: Hyperparameter, value: Any) -> Any:
    if hp.type is tuple:
        return tuple(value.split(",") if isinstance(value, str) else value)
    return hp.type(value)
