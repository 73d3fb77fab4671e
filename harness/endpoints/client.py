"""The one way to open an OpenAI-protocol client (OpenAI, Azure OpenAI, any base_url, local servers).

Keys are read only from the environment variable that belongs to the endpoint (see
``OpenAIEndpoint.key_env``): OPENAI_API_KEY never travels to a custom base_url or to the local
llama.cpp servers, and no key is ever part of a config, a param or a message.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from harness.endpoints.endpoint import OpenAIEndpoint
from harness.endpoints.llama_server import llama_servers, model_gguf, require_llama_cpp, server_count

if TYPE_CHECKING:
    import openai

# Local servers ignore the key, but the SDK insists on one.
LOCAL_API_KEY = "sk-local-no-key"
DEFAULT_AZURE_API_VERSION = "2024-10-21"


class EndpointError(RuntimeError):
    """An endpoint that cannot be used as configured (a missing key or URL)."""


def api_key(endpoint: OpenAIEndpoint) -> str:
    """The key for ``endpoint``, read from the variable it names; a placeholder where none."""
    name = endpoint.key_env
    if name is None:
        return LOCAL_API_KEY
    value = os.environ.get(name)
    if not value:
        named = f", named by {endpoint.key_setting}," if endpoint.api_key_env and endpoint.key_setting else ""
        raise EndpointError(f"the {endpoint.kind} {endpoint.role} needs {name}{named} set in the environment")
    return value


def make_client(endpoint: OpenAIEndpoint, base_url: str | None = None, *, http_client: Any = None) -> openai.OpenAI:
    """An openai client for ``endpoint`` (at ``base_url`` when given, e.g. a server just started).

    Transport errors, 429 and 5xx get the SDK's own ``endpoint.max_retries``; ``http_client``
    replaces the SDK's (tests route it to a fake API).
    """
    import openai

    url = base_url or endpoint.base_url
    common: dict[str, Any] = {"max_retries": endpoint.max_retries, "timeout": endpoint.timeout_s}
    if http_client is not None:
        common["http_client"] = http_client
    key = api_key(endpoint)  # first: a missing key is the likelier mistake
    if endpoint.kind == "azure_openai":
        azure = url or os.environ.get("AZURE_OPENAI_ENDPOINT")
        if not azure:
            raise EndpointError("azure_openai needs a base_url or AZURE_OPENAI_ENDPOINT")
        version = endpoint.api_version or os.environ.get("OPENAI_API_VERSION") or DEFAULT_AZURE_API_VERSION
        return openai.AzureOpenAI(api_key=key, azure_endpoint=azure, api_version=version, **common)
    if endpoint.kind != "openai" and not url:
        raise EndpointError(f"a {endpoint.kind} {endpoint.role} needs a base_url")
    return openai.OpenAI(api_key=key, base_url=url, **common)


def start_clients(
    endpoint: OpenAIEndpoint, stack: contextlib.ExitStack, *, logits_all: bool = False
) -> list[openai.OpenAI]:
    """Ready clients: one per harness-started llama.cpp server, else one; ``stack`` closes them
    and stops the servers. ``logits_all``: the servers keep every position's logits (logprobs)."""
    require_llama_cpp(endpoint)
    urls: Sequence[str | None] = [None]
    if endpoint.starts_servers:
        urls = stack.enter_context(
            llama_servers(
                model_gguf(endpoint.model),
                server_count(endpoint),
                n_ctx=endpoint.n_ctx,
                startup_timeout_s=endpoint.startup_timeout_s,
                n_threads=endpoint.threads_per_server,
                logits_all=logits_all,
            )
        )
    clients = [make_client(endpoint, url) for url in urls]
    for client in clients:
        stack.callback(client.close)
    return clients
