"""harness data augment: files that pass the validator, provenance beside them, rewrites through a
fake endpoint that never see code, and the study's cache built once."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.config import ConfigError
from harness.data.chat import load_jsonl, read_records, record_problems
from harness.endpoints.client import EndpointError
from harness.settings.synthesis import AugmentConfig, EndpointConfig
from harness.synthesis import augment as augment_module
from harness.synthesis.augment import cached_augmentation, check_rewrites
from harness.synthesis.eda import code_spans
from harness.synthesis.rewrite import mask_code, unmask_code
from tests.conftest import chat_record, write_jsonl
from tests.evaluation.fake_server import FakeState, Reply, fake_server

runner = CliRunner()
QUESTIONS = [
    "How do I reverse a list with `reversed()` and keep the original order?",
    "Why does my script fail with this error?\n\n```python\nopen('x').read()\n```\nWhat should I check first?",
    "What is the difference between a process and a thread in Python?",
]


def train_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "train.jsonl", [chat_record(q, f"Answer {i}.") for i, q in enumerate(QUESTIONS)])


def test_eda_cli_writes_a_valid_file_with_originals_first_and_a_sidecar(tmp_path: Path) -> None:
    source = train_file(tmp_path)
    out = tmp_path / "eda.jsonl"
    result = runner.invoke(app, ["data", "augment", str(source), "--method", "eda", "--factor", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    records = [r for _, r in read_records(out, record_problems)]  # the sweep's validator: raises on any problem
    assert records[:3] == [json.loads(line) for line in source.read_text().splitlines()]
    provenance = json.loads((tmp_path / "eda.jsonl.augment.json").read_text())
    assert provenance["originals"] == 3 and provenance["copies"] == len(records) - 3 >= 5
    for line, origin in provenance["copy_of"].items():
        copy, original = records[int(line) - 1]["messages"], records[origin - 1]["messages"]
        assert copy[0] == original[0] and copy[2] == original[2]  # system and answer untouched
        assert code_spans(copy[1]["content"]) == code_spans(original[1]["content"])
    again = tmp_path / "again.jsonl"
    runner.invoke(app, ["data", "augment", str(source), "--method", "eda", "--factor", "2", "--out", str(again)])
    assert again.read_bytes() == out.read_bytes()


def test_augment_cli_refuses_bad_options(tmp_path: Path) -> None:
    source = train_file(tmp_path)
    for args in (
        ["--method", "shuffle"],
        ["--method", "eda", "--alpha", "0.9"],
        ["--method", "eda", "--out", str(source)],
    ):
        call = ["data", "augment", str(source), *args] + (
            [] if "--out" in args else ["--out", str(tmp_path / "o.jsonl")]
        )
        assert runner.invoke(app, call).exit_code == 2, args
    assert not (tmp_path / "o.jsonl").exists()


def rewriter(body: dict[str, Any]) -> Reply:
    """Paraphrases by prefixing; translates by tagging; loses the placeholder of question 2 once."""
    prompt = body["messages"][-1]["content"]
    text = prompt.split("\n\n", 1)[1]
    if "into French" in prompt:
        return Reply("[fr] " + text)
    if "into English" in prompt:
        return Reply("Here is the translation: " + text.removeprefix("[fr] ").replace("How do I", "How can I"))
    if "script fail" in text:  # the question with a code block: its placeholder gets lost
        return Reply(text.replace("[[C1]]", ""))
    return Reply("Put differently: " + text.replace("What is", "Explain"))


def test_paraphrase_and_backtranslate_never_send_code_and_refuse_lost_code(tmp_path: Path) -> None:
    state = FakeState(reply=rewriter)
    source = train_file(tmp_path)
    with fake_server(state) as url:
        for method in ("paraphrase", "backtranslate"):
            out = tmp_path / f"{method}.jsonl"
            result = runner.invoke(
                app,
                [
                    "data",
                    "augment",
                    str(source),
                    "--method",
                    method,
                    "--out",
                    str(out),
                    "--kind",
                    "base_url",
                    "--base-url",
                    url,
                    "--model",
                    "fake",
                ],
            )
            assert result.exit_code == 0, result.output
            copies = load_jsonl(out)[3:]
            assert all(code_spans(c.messages[1]["content"]) for c in copies[:1])
            users = [c.messages[1]["content"] for c in copies]
            if method == "paraphrase":
                # question 2's rewrite lost its code: refused, never written
                assert len(copies) == 2 and "`reversed()`" in users[0]
            else:
                # only question 1 came back changed; a round trip that changes nothing is no copy
                assert users == ["How can I reverse a list with `reversed()` and keep the original order?"]
    for body in state.requests:
        assert "```" not in json.dumps(body) and "`reversed()`" not in json.dumps(body)
    masked, code = mask_code(QUESTIONS[1])
    assert re.findall(r"\[\[C\d\]\]", masked) == ["[[C1]]"] and unmask_code(masked, code) == QUESTIONS[1]


def test_cached_augmentation_is_built_once_per_content_method_and_settings(tmp_path: Path, monkeypatch) -> None:
    examples = load_jsonl(train_file(tmp_path))
    built = []
    real = augment_module.augment
    monkeypatch.setattr(augment_module, "augment", lambda *a, **k: built.append(a[1]) or real(*a, **k))
    config = AugmentConfig(factor=2, seed=1)
    first, path, made = cached_augmentation(examples, "eda", config, tmp_path / "cache")
    second, same_path, made_again = cached_augmentation(examples, "eda", config, tmp_path / "cache")
    assert made and not made_again and path == same_path and built == ["eda"]
    assert [e.messages for e in first] == [e.messages for e in second]
    _, other, _ = cached_augmentation(examples, "eda", config.model_copy(update={"seed": 2}), tmp_path / "cache")
    assert other != path and built == ["eda", "eda"]
    # A rewrite method's key includes the endpoint's identity (not its key): another model, another cache.
    rewrite = AugmentConfig(endpoint=EndpointConfig(kind="base_url", base_url="http://x/v1", model="a"))
    assert augment_module.cache_key(examples, "paraphrase", rewrite) != augment_module.cache_key(
        examples,
        "paraphrase",
        rewrite.model_copy(update={"endpoint": rewrite.endpoint.model_copy(update={"model": "b"})}),
    )


def test_a_rewrite_still_to_build_checks_its_endpoint_before_any_run(tmp_path: Path, monkeypatch) -> None:
    examples = load_jsonl(train_file(tmp_path))
    cache = tmp_path / "cache"
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as after `pip install -e .`
    local = AugmentConfig()  # the packaged SmolLM2 on harness-started llama.cpp servers
    with pytest.raises(ConfigError, match=r"^data\.augment\.endpoint: .*pip install"):
        check_rewrites(examples, ["none", "paraphrase"], local, cache, "data.augment.endpoint")
    check_rewrites(examples, ["none", "eda"], local, cache, "data.augment.endpoint")  # EDA asks no endpoint
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    hosted = AugmentConfig(endpoint=EndpointConfig(kind="openai", model="gpt-4o-mini"))
    with pytest.raises(EndpointError, match="OPENAI_API_KEY"):
        check_rewrites(examples, ["backtranslate"], hosted, cache, "data.augment.endpoint")
    # Built before: the study reads the cache and asks nothing.
    built = augment_module.cache_path(examples, "backtranslate", hosted, cache)
    built.parent.mkdir(parents=True)
    built.write_text("")
    check_rewrites(examples, ["backtranslate"], hosted, cache, "data.augment.endpoint")
