"""The judge against a real llama.cpp server started from the packaged SmolLM2 GGUF."""

from __future__ import annotations

import json
import socket
import urllib.request
from pathlib import Path

import pytest

from harness.evaluation.judge import JudgeItem
from harness.evaluation.judge_session import open_judge
from harness.evaluation.server import ServerError, llama_server
from harness.models import packaged_gguf
from harness.settings.evaluation import JudgeConfig

ROOT = Path(__file__).resolve().parents[2]
HELDOUT = ROOT / "experiments" / "data" / "programmer_heldout.jsonl"


def heldout_pairs(n: int) -> list[tuple[str, str]]:
    pairs = []
    for line in HELDOUT.read_text().splitlines()[:n]:
        messages = json.loads(line)["messages"]
        pairs.append((messages[1]["content"], messages[2]["content"]))
    return pairs


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


def refused(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def server_processes(port: int) -> list[str]:
    """Live processes whose command line is a llama.cpp server on ``port``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"harness.evaluation.llama_serve" in args and str(port).encode() in args:
            found.append(cmdline.parent.name)
    return found


def test_a_file_that_is_no_gguf_fails_fast(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"not a model")
    with pytest.raises(ServerError, match="exited"), llama_server(bogus, startup_timeout_s=60):
        pass
    with pytest.raises(ServerError, match="no GGUF"), llama_server(tmp_path / "absent.gguf"):
        pass


@pytest.mark.slow
def test_server_serves_and_is_gone_after_an_interrupt() -> None:
    with pytest.raises(KeyboardInterrupt), llama_server(packaged_gguf("smollm2")) as url:
        port = port_of(url)
        with urllib.request.urlopen(f"{url}/models", timeout=10) as response:
            assert response.status == 200
        assert server_processes(port)
        raise KeyboardInterrupt
    assert refused(port)
    assert server_processes(port) == []


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
