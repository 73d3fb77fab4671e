"""Every searchable hyperparameter, declared once: name, type, meaning, who uses it.

The search space's config keys, the sampled ``TrialParams`` and the flat dict logged to MLflow are
all derived from ``HYPERPARAMETERS``; a backend refuses keys whose ``backends`` do not name it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

LOCAL = frozenset({"local"})
REMOTE = frozenset({"openai", "azure_openai"})
ALL_BACKENDS = LOCAL | REMOTE
LOCAL_METHODS = ("lora", "full")
REMOTE_METHODS = ("supervised", "dpo")


@dataclass(frozen=True)
class Hyperparameter:
    name: str
    type: type
    meaning: str
    backends: frozenset[str]
    default: Any  # the search-space spec when a config leaves the key out (None: not sampled)
    # Sampled only when the trial's method is one of these. A method the backend does not sample
    # (dpo locally is the study's training.method) is checked by the config instead.
    methods: frozenset[str] | None = None


HYPERPARAMETERS: tuple[Hyperparameter, ...] = (
    Hyperparameter(
        "method",
        str,
        "local: lora (adapters on the frozen base) or full (every weight); OpenAI: supervised or dpo",
        ALL_BACKENDS,
        "lora",
    ),
    Hyperparameter("epochs", int, "passes over the training data", ALL_BACKENDS, 1),
    Hyperparameter(
        "batch_size",
        int,
        "effective batch; locally micro-batches of training.max_micro_batch_size times gradient accumulation",
        ALL_BACKENDS,
        4,
    ),
    Hyperparameter(
        "lr_multiplier",
        float,
        "local: times training.base_learning_rate[method]; OpenAI: learning_rate_multiplier as sent",
        ALL_BACKENDS,
        1.0,
    ),
    Hyperparameter(
        "dropout",
        float,
        "lora: lora_dropout on the adapters' input; full: every dropout probability of the model",
        LOCAL,
        0.05,
    ),
    Hyperparameter("lora_rank", int, "LoRA rank r", LOCAL, 8, frozenset({"lora"})),
    Hyperparameter("lora_alpha", int, "LoRA alpha (scaling alpha / r)", LOCAL, 16, frozenset({"lora"})),
    Hyperparameter(
        "lora_target_modules",
        tuple,
        "modules that get adapters; a list of lists chooses between sets; [all-linear] for every linear",
        LOCAL,
        [["q_proj", "k_proj", "v_proj", "o_proj"]],
        frozenset({"lora"}),
    ),
    Hyperparameter(
        "beta",
        float,
        "DPO beta: how far the policy may move from the reference (OpenAI: method dpo; local: training.method dpo)",
        ALL_BACKENDS,
        None,
        frozenset({"dpo"}),
    ),
    Hyperparameter(
        "augmentation",
        str,
        "training-set augmentation: none, eda, paraphrase or backtranslate (copies of the user turns, made "
        "once per method and cached; data.augment sets factor, seed and the rewrite endpoint; held-out never)",
        LOCAL,
        None,
    ),
)
BY_NAME: Mapping[str, Hyperparameter] = {h.name: h for h in HYPERPARAMETERS}


@dataclass(frozen=True, kw_only=True, repr=False)
class TrialParams:
    """One trial's sampled values, read as attributes (``params.epochs``); immutable.

    One field per hyperparameter (checked below). The four every backend samples (method, epochs,
    batch_size, lr_multiplier) always have a value on a sampled trial; the others are None where the
    backend or the method skips them."""

    method: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr_multiplier: float | None = None
    dropout: float | None = None
    lora_rank: int | None = None
    lora_alpha: int | None = None
    lora_target_modules: tuple[str, ...] | None = None
    beta: float | None = None
    augmentation: str | None = None
    training_args: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "training_args", dict(self.training_args or {}))  # the caller's dict, copied

    def __hash__(self) -> int:  # training_args is a dict: hash what repr shows
        return hash(repr(self))

    def __repr__(self) -> str:
        present = ", ".join(f"{k}={v!r}" for k, v in self.values().items() if v is not None)
        return f"TrialParams({present})"

    def values(self) -> dict[str, Any]:
        """Every hyperparameter's value, None where not sampled, in HYPERPARAMETERS order."""
        return {h.name: getattr(self, h.name) for h in HYPERPARAMETERS}

    @property
    def is_lora(self) -> bool:
        return self.method == "lora"

    def as_flat_dict(self) -> dict[str, Any]:
        """Flat params for MLflow: values not sampled for this trial are left out, not logged as None."""
        flat = {
            name: ",".join(value) if isinstance(value, tuple) else value
            for name, value in self.values().items()
            if value is not None
        }
        return flat | {f"training_args.{k}": v for k, v in self.training_args.items()}


# A hyperparameter declared without its field would be unreadable on a trial: stop at import.
if _unreadable := set(BY_NAME) ^ {f.name for f in fields(TrialParams)} - {"training_args"}:
    raise RuntimeError(f"TrialParams fields and HYPERPARAMETERS differ: {sorted(_unreadable)}")
