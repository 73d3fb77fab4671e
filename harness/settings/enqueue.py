"""Warm starts: ``enqueue:`` lists known-good configurations that the search tries first.

Each entry maps search-space keys (``epochs``, ``lora_rank``, ``training_args.warmup_ratio``) to one
value the space allows: a range's value lies within it, a choice's is one of the choices, a fixed
key may only repeat its value. Keys an entry leaves out are sampled as usual. The entries become
Optuna's ``study.enqueue_trial`` parameters (:func:`optuna_params`): ordinary search trials that
count against ``n_trials`` and inform the sampler like any other.
"""

from __future__ import annotations

from typing import Any

from harness.hyperparams import BY_NAME
from harness.settings.search import Range, SearchSpace, choice_value

Entry = dict[str, Any]


def _spec(space: SearchSpace, key: str) -> Any:
    if key.startswith("training_args."):
        return space.extra_args.get(key.removeprefix("training_args."))
    return getattr(space, key, None) if key in type(space).model_fields and key != "training_args" else None


def _in_range(spec: Range, value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return spec.low <= value <= spec.high and (not spec.is_int or isinstance(value, int))


def _sampled(key: str, spec: Any) -> bool:
    """Whether Optuna samples ``key`` (harness.search_space.suggest): a range, or a choice of several."""
    if isinstance(spec, Range):
        return True
    fixed_set = key == "lora_target_modules" and isinstance(spec, list) and all(isinstance(v, str) for v in spec)
    return isinstance(spec, list) and len(spec) > 1 and not fixed_set


def _check_value(key: str, spec: Any, value: Any) -> None:
    if isinstance(spec, Range):
        if not _in_range(spec, value):
            kind = "an integer" if spec.is_int else "a number"
            raise ValueError(f"{key}: {value!r} is not {kind} in the search space's range [{spec.low}, {spec.high}]")
        return
    choices = spec if isinstance(spec, list) else [spec]
    if key == "lora_target_modules" and all(isinstance(v, str) for v in choices):
        choices = [choices]  # a flat list of module names is one fixed set
    if value not in choices:
        raise ValueError(f"{key}: {value!r} is not among the search space's values {choices!r}")


def optuna_params(space: SearchSpace, entry: Entry) -> dict[str, Any]:
    """Pure: the Optuna parameters for one ``enqueue`` entry (fixed keys left out: Optuna never
    samples them); ValueError naming the key when the entry does not fit ``space``."""
    method = entry.get("method", space.method if not isinstance(space.method, list) else None)
    params: dict[str, Any] = {}
    for key, value in entry.items():
        spec = _spec(space, key)
        if spec is None:
            raise ValueError(f"{key}: not a key of this study's search space")
        _check_value(key, spec, value)
        hp = BY_NAME.get(key)
        if hp is not None and hp.methods and method is not None and not space.on_branch(hp, str(method)):
            raise ValueError(f"{key}: only sampled when method is {'/'.join(sorted(hp.methods))}, not {method}")
        if _sampled(key, spec):
            params[key] = choice_value(value)
    return params


def check_enqueue(space: SearchSpace, entries: list[Entry], n_trials: int | None) -> None:
    """ValueError (``enqueue[i].key: ...``) for an entry the search space cannot take, or for more
    entries than leave the search a trial of its own."""
    if n_trials is not None and entries and len(entries) >= n_trials:
        raise ValueError(
            f"enqueue: {len(entries)} configuration(s) for n_trials {n_trials} leave the search no trial"
            " of its own: raise n_trials or enqueue fewer"
        )
    for index, entry in enumerate(entries):
        if not entry:
            raise ValueError(f"enqueue[{index}]: an empty configuration")
        try:
            optuna_params(space, entry)
        except ValueError as error:
            raise ValueError(f"enqueue[{index}].{error}") from None
