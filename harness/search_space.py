"""Pure mapping from a config's search space to one trial's parameters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from harness.config import Range, SearchSpace


class Suggester(Protocol):
    """The part of optuna.Trial used here (FixedTrial and Trial both satisfy it)."""

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float: ...

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


@dataclass(frozen=True)
class TrialParams:
    epochs: int
    batch_size: int
    lr_multiplier: float
    dropout: float
    method: str
    lora_rank: int | None = None
    lora_alpha: int | None = None
    lora_target_modules: tuple[str, ...] | None = None
    beta: float | None = None
    training_args: dict[str, Any] = field(default_factory=dict)

    @property
    def is_lora(self) -> bool:
        return self.method == "lora"

    def as_flat_dict(self) -> dict[str, Any]:
        """Flat params for MLflow: absent LoRA keys are left out, not logged as None."""
        flat: dict[str, Any] = {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr_multiplier": self.lr_multiplier,
            "dropout": self.dropout,
            "method": self.method,
        }
        if self.is_lora:
            flat |= {
                "lora_rank": self.lora_rank,
                "lora_alpha": self.lora_alpha,
                "lora_target_modules": ",".join(self.lora_target_modules or ()),
            }
        if self.beta is not None:
            flat["beta"] = self.beta
        return flat | {f"training_args.{k}": v for k, v in self.training_args.items()}


def _choice_value(value: Any) -> Any:
    # Optuna choices must be scalars; lists (LoRA target sets) travel as comma-joined strings.
    return ",".join(value) if isinstance(value, list) else value


def suggest_value(trial: Suggester, name: str, spec: Any) -> Any:
    """Sample one parameter: a Range is sampled, a list is a choice, a scalar is fixed."""
    if isinstance(spec, Range):
        if spec.is_int:
            step = int(spec.step) if spec.step is not None else 1
            return trial.suggest_int(name, int(spec.low), int(spec.high), step=step, log=spec.log)
        return trial.suggest_float(
            name, float(spec.low), float(spec.high), step=spec.step, log=spec.log
        )
    if isinstance(spec, list):
        if len(spec) == 1:
            return _choice_value(spec[0])
        return trial.suggest_categorical(name, [_choice_value(v) for v in spec])
    return spec


def suggest(trial: Suggester, space: SearchSpace) -> TrialParams:
    """Sample a full parameter set; the LoRA branch exists only when method is lora."""
    method = suggest_value(trial, "method", space.method)
    lora: dict[str, Any] = {}
    if method == "lora":
        spec = space.lora_target_modules
        # A flat list of module names is one fixed set; a list of lists is a choice between sets.
        fixed_set = isinstance(spec, list) and all(isinstance(v, str) for v in spec)
        targets = spec if fixed_set else suggest_value(trial, "lora_target_modules", spec)
        lora = {
            "lora_rank": int(suggest_value(trial, "lora_rank", space.lora_rank)),
            "lora_alpha": int(suggest_value(trial, "lora_alpha", space.lora_alpha)),
            "lora_target_modules": tuple(targets.split(",") if isinstance(targets, str) else targets),
        }
    beta = None
    if method == "dpo" and space.beta is not None:
        beta = float(suggest_value(trial, "beta", space.beta))
    return TrialParams(
        epochs=int(suggest_value(trial, "epochs", space.epochs)),
        batch_size=int(suggest_value(trial, "batch_size", space.batch_size)),
        lr_multiplier=float(suggest_value(trial, "lr_multiplier", space.lr_multiplier)),
        dropout=float(suggest_value(trial, "dropout", space.dropout)),
        method=str(method),
        beta=beta,
        training_args={
            key: suggest_value(trial, f"training_args.{key}", spec)
            for key, spec in space.training_args.items()
        },
        **lora,
    )


def micro_batches(batch_size: int, max_micro_batch_size: int) -> tuple[int, int]:
    """Effective batch -> (per-step micro batch, gradient accumulation steps), exact product."""
    micro = min(batch_size, max_micro_batch_size)
    while batch_size % micro:
        micro -= 1
    return micro, batch_size // micro
