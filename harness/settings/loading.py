"""Reading a config file: ``key=value`` overrides, data paths, and errors that name the file and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from harness.hyperparams import BY_NAME


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and the key."""


def format_errors(source: str, error: ValidationError) -> str:
    lines = [f"{source}: invalid config"]
    for item in error.errors():
        path = ".".join(str(p) for p in item["loc"] if not _is_union_tag(p))
        problem = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        if item["type"] == "extra_forbidden" and len(item["loc"]) >= 2 and item["loc"][-2] == "search_space":
            problem = _foreign_key(str(item["loc"][-1]), item["loc"])
        if problem.startswith("Value error, "):
            problem = problem.removeprefix("Value error, ")  # our own rules: the message is the problem
        elif not path and item["type"] == "union_tag_invalid":
            path, problem = "backend", f"must be local, openai or azure_openai, got {item['input'].get('backend')!r}"
        lines.append(f"  {path or '(top level)'}: {problem}" if path or ": " not in problem else f"  {problem}")
    return "\n".join(lines)


def _foreign_key(name: str, loc: tuple[Any, ...]) -> str:
    """Why a search-space key is refused: another backend's hyperparameter, or unknown."""
    hp = BY_NAME.get(name)
    if hp is None and name == "training_args":
        return "TrainingArguments exist only on the local backend"
    if hp is None:
        return "unknown key"
    backend = "remote (OpenAI/Azure)" if "remote" in loc else "local"
    used_by = ", ".join(sorted(hp.backends))
    return f"not a hyperparameter of the {backend} backend: {name} ({hp.meaning}) is used by {used_by} only"


def _is_union_tag(part: Any) -> bool:
    # pydantic puts the union member's name into loc ("Range", "list[any]"); users never wrote it.
    names = {"Range", "str", "int", "float", "bool", "local", "remote"}
    return isinstance(part, str) and (part in names or "[" in part)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b=value`` -> (["a", "b"], value), the value parsed as YAML (so 3, 0.1, [1, 2] work)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r}: expected key=value")
    return key.strip().split("."), yaml.safe_load(raw) if raw.strip() else ""


def apply_override(raw: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    merged = dict(raw)
    if len(path) == 1:
        merged[path[0]] = value
        return merged
    child = merged.get(path[0])
    merged[path[0]] = apply_override(child if isinstance(child, dict) else {}, path[1:], value)
    return merged


def resolve_paths(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """Data paths are relative to the working directory, or to the config file if not found there."""
    data = raw.get("data")
    if not isinstance(data, dict):
        return raw
    resolved = dict(data)
    for key in ("train_file", "validation_file"):
        value = data.get(key)
        if isinstance(value, str) and not Path(value).exists() and (base / value).exists():
            resolved[key] = str(base / value)
    return {**raw, "data": resolved}
