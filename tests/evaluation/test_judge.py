"""The judge against a local chat-completions server in a thread: good replies and faults."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness.endpoints.client import EndpointError, make_client
from harness.evaluation.judge import Judge, JudgeItem
from harness.evaluation.judge_cache import JudgeCache
from harness.evaluation.rubric import load_rubric
from harness.settings.evaluation import JudgeConfig
from tests.evaluation.fake_server import FakeState, Reply, completion

RUBRIC = Path(__file__).resolve().parents[2] / "evals" / "consistency_rubric.yaml"
ITEMS = [JudgeItem(f"question {i}?", f"reference {i}.", f"answer {i}.") for i in range(6)]


def judge_for(url: str, cache: JudgeCache | None = None, **overrides: Any) -> Judge:
    settings = {
        "kind": "base_url",
        "model": "fake",
        "rubric": RUBRIC,
        "max_retries": 1,
        "timeout_s": 5.0,
        "concurrency": 3,
        **overrides,
    }
    config = JudgeConfig(**settings)
    return Judge(config, make_client(config, url), load_rubric(RUBRIC), cache)


def test_scores_are_probability_weighted(base_url: str, state: FakeState) -> None:
    judge = judge_for(base_url)
    score = judge.score(ITEMS[0])
    # structure: 60% "7", 40% " 8" on the 1-9 scale -> 7.4 -> (7.4 - 1) / 8 * 100
    assert score.criteria["structure"] == pytest.approx(80.0)
    assert score.criteria["style"] == pytest.approx((0.6 * 8 + 0.4 * 9 - 1) / 8 * 100)
    assert score.overall == pytest.approx(80.0)
    assert score.reasons == "Close to the reference in layout." and score.error is None
    request = state.requests[0]
    assert request["logprobs"] is True and request["top_logprobs"] == 5
    assert request["response_format"] == {"type": "json_object"}
    assert request["temperature"] == 0.0
    assert "question 0?" in request["messages"][1]["content"]
    assert (judge.calls, judge.cache_hits, judge.missing) == (1, 0, 0)


def test_without_logprobs_the_sampled_integer_counts(base_url: str, state: FakeState) -> None:
    state.reply = Reply(logprobs=False)
    score = judge_for(base_url).score(ITEMS[0])
    assert score.criteria["structure"] == pytest.approx(75.0)  # (7 - 1) / 8


def test_warm_cache_rerun_makes_no_calls(base_url: str, state: FakeState, tmp_path: Path) -> None:
    with JudgeCache(tmp_path / "cache.sqlite") as cache:
        first = judge_for(base_url, cache).score_many(ITEMS)
    assert len(state.requests) == len(ITEMS)
    with JudgeCache(tmp_path / "cache.sqlite") as cache:
        rerun = judge_for(base_url, cache)
        second = rerun.score_many(ITEMS)
    assert second == first
    assert (rerun.calls, rerun.cache_hits, rerun.missing) == (0, len(ITEMS), 0)
    assert len(state.requests) == len(ITEMS)


def test_duplicates_in_one_batch_cost_one_call(base_url: str, state: FakeState) -> None:
    judge = judge_for(base_url)
    scores = judge.score_many([ITEMS[0], ITEMS[0], ITEMS[1]])
    assert judge.calls == 2 and scores[0] == scores[1]


def test_calls_run_concurrently(base_url: str, state: FakeState) -> None:
    state.reply = Reply(delay_s=0.3)
    judge = judge_for(base_url, concurrency=3)
    started = time.monotonic()
    judge.score_many(ITEMS)
    assert state.max_active == 3
    assert time.monotonic() - started < 6 * 0.3  # well under the serial time


def test_garbage_is_retried_then_missing(base_url: str, state: FakeState) -> None:
    state.reply = Reply(content="That's a great question... What do you need?")
    judge = judge_for(base_url, max_retries=2)
    score = judge.score(ITEMS[0])
    assert score.overall is None and set(score.criteria.values()) == {None}
    assert score.error == "unparsable"
    assert (judge.calls, judge.missing) == (3, 1)
    # Retries are sampled, since a greedy judge would just repeat itself.
    assert [r["temperature"] for r in state.requests] == [0.0, 0.7, 0.7]


def test_refusal_is_retried_then_missing(base_url: str, state: FakeState) -> None:
    state.reply = Reply(content="I can't help with that.")
    judge = judge_for(base_url, max_retries=1)
    scores = judge.score_many(ITEMS[:2])
    assert [s.error for s in scores] == ["refusal", "refusal"]
    assert (judge.calls, judge.missing) == (4, 2)


def test_a_retry_can_recover(base_url: str, state: FakeState) -> None:
    state.reply = lambda body: Reply("no idea") if body["temperature"] == 0.0 else Reply()
    judge = judge_for(base_url, max_retries=1)
    assert judge.score(ITEMS[0]).overall == pytest.approx(80.0)
    assert (judge.calls, judge.missing) == (2, 0)


def test_slow_answer_times_out(base_url: str, state: FakeState, tmp_path: Path) -> None:
    state.reply = Reply(delay_s=2.0)
    with JudgeCache(tmp_path / "cache.sqlite") as cache:
        judge = judge_for(base_url, cache, timeout_s=0.3, max_retries=1)
        started = time.monotonic()
        score = judge.score(ITEMS[0])
        assert score.error == "timeout" and score.overall is None
        assert time.monotonic() - started < 2.0 * 2
        assert judge.missing == 1
        assert len(cache) == 0  # missing scores are not cached: a rerun tries again
    # The SDK retried once (max_retries=1) before giving up.
    assert len(state.requests) == 2


def test_server_down_is_missing_not_a_crash() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connection refused
        judge = judge_for(f"http://127.0.0.1:{port}/v1", max_retries=0)
        scores = judge.score_many(ITEMS[:3])
    assert [s.error for s in scores] == ["connection"] * 3
    assert judge.missing == 3 and all(s.overall is None for s in scores)


def test_rejected_response_format_is_dropped(base_url: str, state: FakeState) -> None:
    def reply(body: dict[str, Any]) -> Reply:
        if "response_format" in body:
            return Reply("response_format is not supported", status=400)
        return Reply()

    state.reply = reply
    judge = judge_for(base_url)
    assert judge.score(ITEMS[0]).overall is not None
    assert judge.score(ITEMS[1]).overall is not None
    assert judge.calls == 3  # one rejected call, then the option stays off


def test_other_http_errors_are_missing(base_url: str, state: FakeState) -> None:
    state.reply = Reply("context window exceeded", status=400)
    judge = judge_for(base_url)
    assert judge.score(ITEMS[0]).error == "http 400"
    assert judge.response_format is not None  # not a format problem: options kept


def test_params_and_clients_never_carry_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-123")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "az-secret-456")
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://example.openai.azure.com")
    rubric = load_rubric(RUBRIC)
    for kind in ("openai", "azure_openai"):
        config = JudgeConfig(kind=kind, model="gpt-4o-mini", rubric=RUBRIC)
        judge = Judge(config, make_client(config, None), rubric)
        params = judge.params()
        assert params["judge_endpoint"] == kind and params["judge_rubric_hash"] == rubric.hash
        assert not any("secret" in v or "azure.com" in v for v in params.values())
        assert "secret" not in repr(judge.config)
    azure = make_client(JudgeConfig(kind="azure_openai", model="d", rubric=RUBRIC), None)
    assert type(azure).__name__ == "AzureOpenAI"
    # A named key: params and the config the parent run logs (config.json) carry its name only.
    monkeypatch.setenv("GATEWAY_KEY", "gw-secret-789")
    gateway = JudgeConfig(kind="base_url", model="m", base_url="http://127.0.0.1:1/v1", api_key_env="GATEWAY_KEY")
    assert make_client(gateway).api_key == "gw-secret-789"
    assert not any("secret" in v for v in Judge(gateway, make_client(gateway), rubric).params().values())
    assert "secret" not in gateway.model_dump_json()


def test_missing_keys_fail_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(EndpointError, match="OPENAI_API_KEY"):
        make_client(JudgeConfig(kind="openai", model="gpt-4o-mini"), None)
    with pytest.raises(EndpointError, match="AZURE_OPENAI_API_KEY"):
        make_client(JudgeConfig(kind="azure_openai", model="d"), None)
    local = make_client(JudgeConfig(kind="base_url"), "http://127.0.0.1:1/v1")
    assert local.api_key  # a dummy: local servers ignore it


def test_openai_kind_asks_for_a_strict_schema() -> None:
    config = JudgeConfig(kind="openai", model="gpt-4o-mini", rubric=RUBRIC)
    judge = Judge(config, object(), load_rubric(RUBRIC))
    schema_format = judge.response_format
    assert schema_format is not None and schema_format["type"] == "json_schema"
    schema = schema_format["json_schema"]["schema"]
    assert schema["properties"]["overall"]["enum"] == list(range(1, 10))
    assert set(schema["required"]) == {
        "structure",
        "content",
        "detail",
        "style",
        "overall",
        "reasons",
    }


# Replies of an unexpected shape: each is a missing score (retried first), never an exception that
# would fail the whole trial. Each mutates an otherwise good completion.
MALFORMED: dict[str, Callable[[dict[str, Any]], Any]] = {
    "empty choices": lambda body: body.update(choices=[]),
    "null choices": lambda body: body.update(choices=None),
    "no choices": lambda body: body.pop("choices"),
    "choices not a list": lambda body: body.update(choices="oops"),
    "null message": lambda body: body["choices"][0].update(message=None),
    "null content": lambda body: body["choices"][0]["message"].update(content=None),
    "content not text": lambda body: body["choices"][0]["message"].update(content=[{"type": "text", "text": "7"}]),
}


def malformed(change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    body = completion(Reply(), want_logprobs=True)
    change(body)
    return body


@pytest.mark.parametrize("shape", sorted(MALFORMED))
def test_a_reply_of_an_unexpected_shape_is_missing(base_url: str, state: FakeState, shape: str) -> None:
    state.reply = Reply(raw=malformed(MALFORMED[shape]))
    judge = judge_for(base_url, max_retries=1)
    score = judge.score(ITEMS[0])
    assert score.overall is None and set(score.criteria.values()) == {None}
    assert score.error == "malformed"
    assert (judge.calls, judge.missing) == (2, 1)  # retried once, like an unparsable reply


def test_a_body_that_is_not_json_is_missing(base_url: str, state: FakeState) -> None:
    state.reply = Reply(raw="<html><body>502 Bad Gateway</body></html>")
    judge = judge_for(base_url, max_retries=0)
    score = judge.score(ITEMS[0])
    assert score.overall is None and score.error == "malformed"
    assert judge.missing == 1


def test_one_malformed_reply_leaves_the_others_scored(base_url: str, state: FakeState) -> None:
    bad = malformed(MALFORMED["empty choices"])
    state.reply = lambda body: Reply(raw=bad) if "question 1?" in body["messages"][1]["content"] else Reply()
    judge = judge_for(base_url, max_retries=0)
    scores = judge.score_many(ITEMS[:3])
    assert [s.overall is None for s in scores] == [False, True, False]
    assert judge.missing == 1


def test_a_reply_failing_validation_is_missing(base_url: str, state: FakeState) -> None:
    import openai

    # A strictly validating client turns a bad shape into APIResponseValidationError.
    state.reply = Reply(raw=malformed(MALFORMED["choices not a list"]))
    config = JudgeConfig(kind="base_url", model="fake", rubric=RUBRIC, max_retries=0)
    client = openai.OpenAI(api_key="x", base_url=base_url, max_retries=0, _strict_response_validation=True)
    judge = Judge(config, client, load_rubric(RUBRIC))
    score = judge.score(ITEMS[0])
    assert score.overall is None and score.error == "malformed" and judge.missing == 1


class _Raising:
    """A client whose every completion raises ``error`` (what a validating SDK layer may raise)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self._create))

    def _create(self, **request: Any) -> Any:
        raise self.error


def test_a_pydantic_validation_error_is_missing() -> None:
    import pydantic

    try:
        pydantic.TypeAdapter(int).validate_python("seven")
    except pydantic.ValidationError as failure:
        error = failure
    config = JudgeConfig(kind="base_url", model="fake", rubric=RUBRIC, max_retries=1)
    judge = Judge(config, _Raising(error), load_rubric(RUBRIC))
    score = judge.score(ITEMS[0])
    assert score.overall is None and score.error == "malformed"
    assert (judge.calls, judge.missing) == (2, 1)


def test_server_errors_after_the_sdk_retries_are_missing(base_url: str, state: FakeState) -> None:
    state.reply = Reply("overloaded", status=503)
    judge = judge_for(base_url, max_retries=1)
    scores = judge.score_many(ITEMS[:2])
    assert [s.error for s in scores] == ["http 503", "http 503"]
    assert judge.missing == 2
    assert len(state.requests) == 4  # the SDK retried each once


def test_a_bad_request_not_about_options_is_missing(base_url: str, state: FakeState) -> None:
    state.reply = Reply("messages: invalid role 'reviewer'", status=400)
    judge = judge_for(base_url)
    scores = judge.score_many(ITEMS[:2])
    assert [s.error for s in scores] == ["http 400", "http 400"] and judge.missing == 2
    assert judge.use_logprobs and judge.response_format is not None  # nothing was dropped


# Logprobs that are absent or malformed: the sampled integer counts (as documented in
# judge_parse), and nothing raises. structure 7 on the 1-9 scale -> 75.
BROKEN_LOGPROBS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "null logprobs": lambda choice: choice.update(logprobs=None),
    "null content": lambda choice: choice.update(logprobs={"content": None}),
    "content not a list": lambda choice: choice.update(logprobs={"content": "7"}),
    "null token": lambda choice: [e.update(token=None) for e in choice["logprobs"]["content"]],
    "null logprob": lambda choice: [
        t.update(logprob=None) for e in choice["logprobs"]["content"] for t in e["top_logprobs"]
    ],
    "null top token": lambda choice: [
        t.update(token=None) for e in choice["logprobs"]["content"] for t in e["top_logprobs"]
    ],
    "null top list": lambda choice: [e.update(top_logprobs=None) for e in choice["logprobs"]["content"]],
}


@pytest.mark.parametrize("shape", sorted(BROKEN_LOGPROBS))
def test_broken_logprobs_fall_back_to_the_sampled_integer(base_url: str, state: FakeState, shape: str) -> None:
    state.reply = Reply(raw=malformed(lambda body: BROKEN_LOGPROBS[shape](body["choices"][0])))
    judge = judge_for(base_url)
    score = judge.score(ITEMS[0])
    assert score.error is None and judge.missing == 0
    assert score.criteria["structure"] == pytest.approx(75.0)
    assert score.overall == pytest.approx(75.0)
