"""A tiny chat-completions server in a thread, to put the judge through faults for real."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GOOD = '{"structure": 7, "content": 6, "detail": 5, "style": 8, "overall": 7, "reasons": "Close to the reference in layout."}'


@dataclass
class Reply:
    content: str = GOOD
    delay_s: float = 0.0
    status: int = 200
    logprobs: bool = True
    # Sent as the whole body instead of a well-formed completion: a dict as JSON, a str verbatim.
    raw: dict[str, Any] | str | None = None
    finish_reason: str = "stop"  # "length": cut off at max_tokens


@dataclass
class FakeState:
    """What the server answers (``reply`` may be a function of the request) and what it saw."""

    reply: Reply | Callable[[dict[str, Any]], Reply] = field(default_factory=Reply)
    requests: list[dict[str, Any]] = field(default_factory=list)
    # (path, Authorization header) per request, beside the bodies in ``requests``.
    seen: list[tuple[str, str | None]] = field(default_factory=list)
    active: int = 0
    max_active: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def token_logprobs(content: str) -> list[dict[str, Any]]:
    """Digits are their own tokens with a 60/40 split between d and d+1 (d-1 for 9)."""
    entries = []
    for token in re.findall(r"\d|[^\d]+", content):
        top = [{"token": token, "logprob": 0.0, "bytes": None}]
        if token.isdigit():
            other = int(token) + 1 if int(token) < 9 else int(token) - 1
            top = [
                {"token": token, "logprob": -0.5108256, "bytes": None},  # ln 0.6
                {"token": f" {other}", "logprob": -0.9162907, "bytes": None},  # ln 0.4
                {"token": "{", "logprob": -9.0, "bytes": None},
            ]
        entries.append({**top[0], "top_logprobs": top})
    return entries


def completion(reply: Reply, want_logprobs: bool) -> dict[str, Any]:
    logprobs = None
    if want_logprobs and reply.logprobs:
        logprobs = {"content": token_logprobs(reply.content)}
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "fake",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.content},
                "finish_reason": reply.finish_reason,
                "logprobs": logprobs,
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def _handler(state: FakeState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                state.requests.append(body)
                state.seen.append((self.path, self.headers.get("Authorization")))
                state.active += 1
                state.max_active = max(state.max_active, state.active)
            try:
                reply = state.reply(body) if callable(state.reply) else state.reply
                time.sleep(reply.delay_s)
                payload: dict[str, Any] | str = completion(reply, bool(body.get("logprobs")))
                if reply.raw is not None:
                    payload = reply.raw
                elif reply.status != 200:
                    payload = {"error": {"message": reply.content, "type": "invalid_request"}}
                self._send(reply.status, payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client timed out and hung up
            finally:
                with state.lock:
                    state.active -= 1

        def _send(self, status: int, payload: dict[str, Any] | str) -> None:
            data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def fake_server(state: FakeState) -> Iterator[str]:
    """Serve on a free port; yields the base_url."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
