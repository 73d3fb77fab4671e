"""Keys go only to the endpoint they belong to (evaluation.judge.api_key_env): what the server saw."""

from __future__ import annotations

import pytest

from harness.endpoints.client import EndpointError, make_client
from harness.evaluation.judge import Judge
from harness.evaluation.judge_session import open_judge
from harness.evaluation.rubric import load_rubric
from harness.settings.evaluation import JudgeConfig
from tests.evaluation.fake_server import FakeState
from tests.evaluation.test_judge import ITEMS, RUBRIC, judge_for


def authorizations(state: FakeState) -> list[str | None]:
    return [auth for _, auth in state.seen]


@pytest.mark.parametrize("kind", ["base_url", "llama_cpp"])
def test_a_custom_or_local_judge_never_sees_a_providers_key(
    kind: str, base_url: str, state: FakeState, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-secret")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "az-secret")
    config = JudgeConfig(kind=kind, model="fake", base_url=base_url, rubric=RUBRIC, max_retries=0)
    Judge(config, make_client(config), load_rubric(RUBRIC)).score(ITEMS[0])
    seen = authorizations(state)
    assert seen and not any(auth and "secret" in auth for auth in seen)


def test_a_base_url_judge_sends_the_key_it_names(
    base_url: str, state: FakeState, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-secret")
    monkeypatch.setenv("GATEWAY_KEY", "gw-123")
    judge = judge_for(base_url, api_key_env="GATEWAY_KEY")
    judge.score(ITEMS[0])
    assert authorizations(state) == ["Bearer gw-123"]
    assert not any("gw-123" in v or "GATEWAY_KEY" in v for v in judge.params().values())


def test_an_openai_judge_reads_its_own_key_or_the_named_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-secret")
    monkeypatch.setenv("TEAM_OPENAI_KEY", "sk-team")
    assert make_client(JudgeConfig(kind="openai", model="m"), None).api_key == "sk-openai-secret"
    assert make_client(JudgeConfig(kind="openai", model="m", api_key_env="TEAM_OPENAI_KEY"), None).api_key == "sk-team"


def test_a_named_key_that_is_unset_fails_before_any_request(
    base_url: str, state: FakeState, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-secret")
    monkeypatch.delenv("GATEWAY_KEY", raising=False)
    config = JudgeConfig(kind="base_url", model="fake", base_url=base_url, rubric=RUBRIC, api_key_env="GATEWAY_KEY")
    with (
        pytest.raises(EndpointError, match=r"GATEWAY_KEY, named by evaluation\.judge\.api_key_env"),
        open_judge(config),
    ):
        pass
    assert state.requests == []


def test_api_key_env_is_a_name_and_llama_cpp_takes_none() -> None:
    import pydantic

    with pytest.raises(pydantic.ValidationError, match="never sends a key"):
        JudgeConfig(kind="llama_cpp", api_key_env="OPENAI_API_KEY")
    with pytest.raises(pydantic.ValidationError, match="must name an environment variable"):
        JudgeConfig(kind="base_url", base_url="http://x/v1", api_key_env="sk-proj abc/123")
    assert JudgeConfig(kind="openai").key_env == "OPENAI_API_KEY"
    assert JudgeConfig(kind="azure_openai").key_env == "AZURE_OPENAI_API_KEY"
    assert JudgeConfig(kind="base_url").key_env is None
    assert JudgeConfig(kind="base_url", api_key_env="GATEWAY_KEY").key_env == "GATEWAY_KEY"
    assert JudgeConfig(kind="llama_cpp").key_env is None
