"""Start llama-cpp-python's OpenAI-compatible server (the local ``llama_cpp`` endpoint), and always stop it."""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from harness.config import ConfigError
from harness.endpoints.endpoint import OpenAIEndpoint

_PR_SET_PDEATHSIG = 1
HOST = "127.0.0.1"
# llama-cpp-python is an extra: it compiles from source (minutes), and only these servers need it.
LLAMA_EXTRA = "pip install -e '.[llama]'"


class ServerError(RuntimeError):
    """The llama.cpp server did not come up."""


def require_llama_cpp(endpoint: OpenAIEndpoint, setting: str | None = None) -> None:
    """A ConfigError in one line naming the extra, when ``endpoint`` needs a llama.cpp server and
    this install has none; checked before anything starts. ``setting``: where the config says so."""
    if not endpoint.starts_servers or importlib.util.find_spec("llama_cpp") is not None:
        return
    where = f"{setting}: " if setting else ""
    raise ConfigError(
        f"{where}a llama_cpp {endpoint.role} runs {endpoint.model} on a local llama.cpp server, and"
        f" llama-cpp-python is not installed: {LLAMA_EXTRA} (or give it a base_url, or another kind)"
    )


def model_gguf(model: str) -> Path:
    """A packaged model name ("smollm2") or a path to a GGUF file."""
    from harness.models import PACKAGED, packaged_gguf

    return packaged_gguf(model) if model in PACKAGED else Path(model).expanduser()


def server_count(endpoint: OpenAIEndpoint) -> int:
    # More single-threaded servers than cores would only contend for the same CPUs.
    return endpoint.servers or max(1, min(endpoint.concurrency, os.cpu_count() or 1))


def free_port() -> int:
    """A port the OS reports free right now (a tiny race with other starters remains)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def server_command(gguf: Path, port: int, n_ctx: int, n_threads: int | None, logits_all: bool = True) -> list[str]:
    # llama_serve is `python -m llama_cpp.server` with a workaround for a crash on AMX CPUs.
    command = [sys.executable, "-m", "harness.endpoints.llama_serve", "--model", str(gguf)]
    command += ["--host", HOST, "--port", str(port), "--n_ctx", str(n_ctx)]
    if n_threads is not None:
        command += ["--n_threads", str(n_threads), "--n_threads_batch", str(n_threads)]
    # logits_all: logprobs need every position's logits, which costs time and n_ctx x vocab floats.
    command += ["--logits_all", str(logits_all)]
    return [*command, "--verbose", "False"]


@contextlib.contextmanager
def llama_server(
    gguf: Path,
    *,
    port: int | None = None,
    n_ctx: int = 2048,
    startup_timeout_s: float = 120,
    n_threads: int | None = None,
    logits_all: bool = True,
) -> Iterator[str]:
    """Serve ``gguf`` on 127.0.0.1 and yield the base_url (``http://127.0.0.1:PORT/v1``).

    The server runs in its own process group, killed on exit whatever the reason
    (exceptions and KeyboardInterrupt included).
    """
    with llama_servers(
        gguf,
        1,
        ports=[port] if port else None,
        n_ctx=n_ctx,
        startup_timeout_s=startup_timeout_s,
        n_threads=n_threads,
        logits_all=logits_all,
    ) as urls:
        yield urls[0]


@contextlib.contextmanager
def llama_servers(
    gguf: Path,
    count: int,
    *,
    ports: list[int] | None = None,
    n_ctx: int = 2048,
    startup_timeout_s: float = 120,
    n_threads: int | None = None,
    logits_all: bool = True,
) -> Iterator[list[str]]:
    """``count`` servers of the same model, started together; yields their base_urls."""
    gguf = Path(gguf)
    if not gguf.is_file():
        raise ServerError(f"no GGUF file at {gguf}")
    ports = ports or [free_port() for _ in range(count)]
    with contextlib.ExitStack() as stack:
        started = []
        for port in ports:
            log = stack.enter_context(tempfile.TemporaryFile())
            process = subprocess.Popen(
                server_command(gguf, port, n_ctx, n_threads, logits_all),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: one killpg stops its children too
                preexec_fn=_die_with_parent,
            )
            stack.callback(_stop, process)
            started.append((process, port, log))
        deadline = time.monotonic() + startup_timeout_s
        for process, port, log in started:
            _wait_ready(process, port, log, deadline)
        yield [f"http://{HOST}:{port}/v1" for _, port, _ in started]


def _die_with_parent() -> None:
    """Linux: the server gets SIGTERM when the harness dies, even by SIGKILL (no orphans)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _wait_ready(process: subprocess.Popen[bytes], port: int, log: object, deadline: float) -> None:
    """Poll /v1/models until it answers 200; fail fast if the process dies."""
    url = f"http://{HOST}:{port}/v1/models"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"llama.cpp server exited with {process.returncode}: {_tail(log)}")
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(url, timeout=2) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.2)
    raise ServerError(f"llama.cpp server on port {port} not ready in time: {_tail(log)}")


def _tail(log: object, limit: int = 2000) -> str:
    with contextlib.suppress(Exception):
        log.seek(0)  # type: ignore[attr-defined]
        return log.read().decode(errors="replace")[-limit:]  # type: ignore[attr-defined]
    return ""


def _stop(process: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after ``grace_s``."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    else:
        # The leader exited; children it forked may still hold the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
