"""Secrets out of what the harness records or prints: a password in a URL becomes ``***``.

Storage and tracking URLs may carry credentials (``postgresql://user:password@host/db``); the
config is logged to MLflow and URLs appear in messages, so every such text goes through here.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
# scheme://user:password@host: the password runs to the authority's last "@" (it may hold more).
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@\s]*):(?P<password>[^/?#\s]*)@(?=[^@/?#\s]*)")
# libpq and most drivers also take the password as a query parameter.
_QUERY = re.compile(r"(?P<head>[?&](?:password|passwd|pwd)=)(?P<password>[^&#\s]*)", re.IGNORECASE)


def mask_url(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``; nothing else changes."""
    if "://" not in text:
        return text
    text = _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@" if m["password"] else m[0], text)
    return _QUERY.sub(lambda m: f"{m['head']}{MASK}", text)


def masked(data: Any) -> Any:
    """A copy of JSON-like ``data`` (dicts, lists, strings, scalars) with every URL masked."""
    if isinstance(data, str):
        return mask_url(data)
    if isinstance(data, dict):
        return {key: masked(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [masked(value) for value in data]
    return data
