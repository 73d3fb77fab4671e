"""The one client factory: plain or Azure, the key only from the endpoint's own variable."""

from __future__ import annotations

import contextlib

import pytest

from harness.endpoints.client import LOCAL_API_KEY, EndpointError, make_client, start_clients
from harness.endpoints.endpoint import OpenAIEndpoint
from harness.settings.evaluation import JudgeConfig
from harness.settings.synthesis import EndpointConfig

PROVIDER_ENV = ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT", "OPENAI_API_VERSION")


@pytest.fixture(autouse=True)
def no_provider_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)


def test_plain_openai_reads_its_key_and_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-plain")
    client = make_client(OpenAIEndpoint(kind="openai", model="m", max_retries=3, timeout_s=7.0))
    assert type(client).__name__ == "OpenAI"
    assert (client.api_key, client.max_retries, client.timeout) == ("sk-plain", 3, 7.0)


def test_azure_takes_endpoint_and_version_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "az-key")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-for-azure")
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://example.openai.azure.com")
    monkeypatch.setenv("OPENAI_API_VERSION", "2025-01-01")
    client = make_client(OpenAIEndpoint(kind="azure_openai", model="deployment"))
    assert type(client).__name__ == "AzureOpenAI"
    assert client.api_key == "az-key"
    assert str(client.base_url).startswith("https://example.openai.azure.com")
    assert client._api_version == "2025-01-01"
    pinned = make_client(OpenAIEndpoint(kind="azure_openai", api_version="2024-06-01"), "https://other.azure.com")
    assert pinned._api_version == "2024-06-01" and str(pinned.base_url).startswith("https://other.azure.com")


def test_a_named_key_is_read_and_a_missing_one_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = OpenAIEndpoint(kind="base_url", base_url="http://127.0.0.1:1/v1", api_key_env="GATEWAY_KEY")
    with pytest.raises(EndpointError, match="the base_url endpoint needs GATEWAY_KEY set in the environment"):
        make_client(gateway)
    monkeypatch.setenv("GATEWAY_KEY", "gw-key")
    assert make_client(gateway).api_key == "gw-key"
    # Each config says where its api_key_env is written, so the message points at the right line.
    with pytest.raises(EndpointError, match=r"the openai judge needs TEAM_KEY, named by evaluation\.judge\."):
        make_client(JudgeConfig(kind="openai", api_key_env="TEAM_KEY"))
    with pytest.raises(EndpointError, match="the azure_openai endpoint needs AZURE_OPENAI_API_KEY"):
        make_client(EndpointConfig(kind="azure_openai"))


def test_local_servers_get_a_placeholder_and_urls_are_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-provider")
    local = make_client(OpenAIEndpoint(kind="base_url"), "http://127.0.0.1:1/v1")
    assert local.api_key == LOCAL_API_KEY
    with pytest.raises(EndpointError, match="a base_url endpoint needs a base_url"):
        make_client(OpenAIEndpoint(kind="base_url"))
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "az-key")
    with pytest.raises(EndpointError, match="AZURE_OPENAI_ENDPOINT"):
        make_client(OpenAIEndpoint(kind="azure_openai"))


def test_start_clients_opens_one_client_at_a_given_url_and_closes_it() -> None:
    endpoint = OpenAIEndpoint(kind="llama_cpp", base_url="http://127.0.0.1:1/v1")
    assert not endpoint.starts_servers  # a server the user runs: nothing to start
    with contextlib.ExitStack() as stack:
        (client,) = start_clients(endpoint, stack)
        assert str(client.base_url).startswith("http://127.0.0.1:1/v1")
    assert client.is_closed()


def test_callers_keep_their_own_defaults_and_the_shared_bounds() -> None:
    import pydantic

    judge, synth = JudgeConfig(), EndpointConfig()
    assert (judge.concurrency, judge.timeout_s, judge.temperature, judge.max_tokens) == (4, 60.0, 0.0, 200)
    assert (synth.concurrency, synth.timeout_s, synth.temperature, synth.max_tokens) == (2, 120.0, 0.7, 384)
    for config in (JudgeConfig, EndpointConfig):
        with pytest.raises(pydantic.ValidationError):
            config(concurrency=0)
        with pytest.raises(pydantic.ValidationError):
            config(temperature=3.0)
        with pytest.raises(pydantic.ValidationError, match="never sends a key"):
            config(kind="llama_cpp", api_key_env="OPENAI_API_KEY")
