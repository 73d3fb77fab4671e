"""`harness launch k8s` creates the ConfigMap, then the Job, through the Kubernetes API: here a
stand-in API server on loopback that records what it is sent and answers as the real one does."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import yaml
from typer.testing import CliRunner

from harness.cli import app
from tests.launch.clusters import config_file


class _ApiServer(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, dict]]] = []
    refuse = False

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append((self.path, body))
        status = 409 if type(self).refuse else 201
        reply = {"kind": "Status", "reason": "AlreadyExists", "code": 409} if type(self).refuse else body
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def kube_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_ApiServer]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ApiServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{server.server_address[1]}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(kubeconfig))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    _ApiServer.received, _ApiServer.refuse = [], False
    try:
        yield _ApiServer
    finally:
        server.shutdown()


def _launch(tmp_path: Path) -> list[str]:
    path = config_file(tmp_path)
    return ["launch", "k8s", str(path), "--workers", "2", "--image", "img:1", "--out", str(tmp_path / "k8s")]


def test_the_config_map_then_the_job_are_created_in_the_namespace(tmp_path: Path, kube_api: type[_ApiServer]) -> None:
    result = CliRunner().invoke(app, [*_launch(tmp_path), "--namespace", "studies"])
    assert result.exit_code == 0, result.output
    paths = [path for path, _ in kube_api.received]
    assert paths == ["/api/v1/namespaces/studies/configmaps", "/apis/batch/v1/namespaces/studies/jobs"]
    job = kube_api.received[1][1]
    assert job["spec"]["completionMode"] == "Indexed" and job["spec"]["parallelism"] == 2
    assert "created ConfigMap/harness-tiny-study-config, Job/harness-tiny-study" in " ".join(result.output.split())


def test_a_refusal_of_the_api_is_said_with_its_reason(tmp_path: Path, kube_api: type[_ApiServer]) -> None:
    kube_api.refuse = True
    result = CliRunner().invoke(app, _launch(tmp_path))
    assert result.exit_code == 2
    assert "the cluster refused the job: 409" in " ".join(result.output.split())
