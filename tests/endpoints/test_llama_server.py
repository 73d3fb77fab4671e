"""The harness-managed llama.cpp server started from the packaged SmolLM2 GGUF: up, and always gone."""

from __future__ import annotations

import socket
import sys
import urllib.request
from pathlib import Path

import pytest

from harness.config import ConfigError
from harness.endpoints.endpoint import OpenAIEndpoint
from harness.endpoints.llama_server import ServerError, llama_server, require_llama_cpp
from harness.models import packaged_gguf


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
        if b"harness.endpoints.llama_serve" in args and str(port).encode() in args:
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


def test_only_a_server_the_harness_starts_needs_the_llama_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    require_llama_cpp(OpenAIEndpoint())  # installed here (the dev extra has it): nothing to say
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as after `pip install -e .`
    with pytest.raises(ConfigError, match=r"^evaluation.judge: .* pip install -e '\.\[llama\]'"):
        require_llama_cpp(OpenAIEndpoint(), "evaluation.judge")
    require_llama_cpp(OpenAIEndpoint(base_url="http://127.0.0.1:8080/v1"))  # served elsewhere
    require_llama_cpp(OpenAIEndpoint(kind="openai", model="gpt-4o-mini"))
