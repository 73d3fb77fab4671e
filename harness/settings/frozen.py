"""The base of every config model: frozen (validated once, never changed) and strict about keys."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def env_var_name(value: str | None) -> str | None:
    """An ``api_key_env`` value: the name of an environment variable, never a key itself."""
    # The message leaves the value out: what was pasted here may be the key itself.
    if value is not None and not _ENV_NAME.fullmatch(value):
        raise ValueError("must name an environment variable (letters, digits, _), not hold a key")
    return value
