"""The judge against a real llama.cpp server started from the packaged SmolLM2 GGUF."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.evaluation.judge import JudgeItem
from harness.evaluation.judge_session import open_judge
from harness.settings.evaluation import JudgeConfig
from tests.endpoints.test_llama_server import port_of, refused

ROOT = Path(__file__).resolve().parents[2]
HELDOUT = ROOT / "experiments" / "data" / "programmer_heldout.jsonl"


def heldout_pairs(n: int) -> list[tuple[str, str]]:
    pairs = []
    for line in HELDOUT.read_text().splitlines()[:n]:
        messages = json.loads(line)["messages"]
        pairs.append((messages[1]["content"], messages[2]["content"]))
    return pairs


@pytest.mark.slow
def test_real_judge_scores_and_a_warm_rerun_makes_no_calls(tmp_path: Path) -> None:
    config = JudgeConfig(cache_path=tmp_path / "cache.sqlite", concurrency=2, timeout_s=120)
    items = [JudgeItem(q, a, a) for q, a in heldout_pairs(2)]  # identical answers
    items += [JudgeItem(q, a, "I don't know, sorry.") for q, a in heldout_pairs(4)[2:]]
    with open_judge(config) as judge:
        ports = [port_of(str(client.base_url)) for client in judge.clients]
        first = judge.score_many(items)
        calls, missing = judge.calls, judge.missing
        params = judge.params()
    assert len(ports) == 2 and all(refused(p) for p in ports)
    assert params["judge_endpoint"] == "llama_cpp" and params["judge_model"] == "smollm2"
    assert calls >= len(items)
    assert missing == sum(s.overall is None for s in first)
    assert missing < len(items)  # grammar-constrained JSON: SmolLM2 does produce scores
    for score in first:
        if score.overall is not None:
            assert 0.0 <= score.overall <= 100.0
            assert all(v is not None and 0.0 <= v <= 100.0 for v in score.criteria.values())
        else:
            assert score.error
    with open_judge(config) as rerun:
        second = rerun.score_many(items)
    assert rerun.cache_hits == len(items) - missing
    if missing == 0:
        assert rerun.calls == 0 and second == first
