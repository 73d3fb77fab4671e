"""A fake fine-tuning service behind httpx.MockTransport, answering with recorded payloads.

It keeps state across clients (a "process restart" is a new backend on the same fake), lets a
test queue faults (status codes, connection loss) per route, and records every request.
"""

from __future__ import annotations

import base64
import copy
import csv
import io
import itertools
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

PAYLOADS = Path(__file__).parent / "payloads"


def payload(name: str) -> Any:
    path = PAYLOADS / name
    return json.loads(path.read_text()) if name.endswith(".json") else path.read_text()


@dataclass
class Fault:
    method: str
    pattern: str  # regex on the path after the API prefix, e.g. r"/fine_tuning/jobs$"
    status: int = 0  # 0: drop the connection instead of answering
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1


@dataclass
class Seen:
    method: str
    path: str
    raw_path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class FakeAPI:
    """State: files, jobs and their events. A job advances one step per ``retrieve``."""

    def __init__(self, steps: int = 4, outcome: str = "succeeded", base64_result: bool = False):
        self.steps = steps
        self.outcome = outcome
        self.base64_result = base64_result
        self.requests: list[Seen] = []
        self.faults: list[Fault] = []
        self.files: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}  # oldest first
        self.progress: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()  # trials poll from several threads

    # -- test helpers ---------------------------------------------------------------------------

    def http_client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handle))

    def fail(self, method: str, pattern: str, status: int = 0, body: Any = None, **kw: Any) -> None:
        self.faults.append(Fault(method, pattern, status, body, **kw))

    def calls(self, method: str, pattern: str) -> list[Seen]:
        return [r for r in self.requests if r.method == method and re.search(pattern, r.path)]

    # -- routing --------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            return self._handle(request)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        path = re.sub(r"^/(openai|v1)", "", request.url.path)
        path = re.sub(r"^/deployments/[^/]+", "", path)
        body = request.read()
        self.requests.append(
            Seen(
                request.method,
                path,
                request.url.path,
                dict(request.url.params),
                dict(request.headers),
                body,
            )
        )
        for fault in self.faults:
            if fault.times and fault.method == request.method and re.search(fault.pattern, path):
                fault.times -= 1
                if not fault.status:
                    raise httpx.ConnectError("connection lost", request=request)
                return httpx.Response(fault.status, json=fault.body, headers=fault.headers)
        for method, pattern, handler in self._routes():
            match = re.fullmatch(pattern, path)
            if method == request.method and match:
                return handler(request, body, *match.groups())
        return httpx.Response(
            404,
            json={
                "error": {
                    "message": f"no route {path}",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": None,
                }
            },
        )

    def _routes(self) -> list[tuple[str, str, Callable[..., httpx.Response]]]:
        return [
            ("POST", r"/files", self._upload),
            ("GET", r"/files", self._list_files),
            ("GET", r"/files/([^/]+)", lambda r, b, fid: httpx.Response(200, json=self.files[fid])),
            (
                "GET",
                r"/files/([^/]+)/content",
                lambda r, b, fid: httpx.Response(200, content=self.contents[fid]),
            ),
            ("POST", r"/fine_tuning/jobs", self._create_job),
            ("GET", r"/fine_tuning/jobs", self._list_jobs),
            ("GET", r"/fine_tuning/jobs/([^/]+)", self._retrieve_job),
            ("GET", r"/fine_tuning/jobs/([^/]+)/events", self._list_events),
            ("POST", r"/fine_tuning/jobs/([^/]+)/cancel", self._cancel_job),
            ("POST", r"/chat/completions", self._chat),
        ]

    # -- files ----------------------------------------------------------------------------------

    def _upload(self, request: httpx.Request, body: bytes) -> httpx.Response:
        filename = re.search(rb'filename="([^"]+)"', body).group(1).decode()
        content = body.split(b"\r\n\r\n", 2)[-1].rsplit(b"\r\n--", 1)[0]
        file_id = f"file-{next(self._ids)}"
        record = payload("file_object.json") | {
            "id": file_id,
            "filename": filename,
            "bytes": len(content),
        }
        self.files[file_id] = record
        self.contents[file_id] = content
        return httpx.Response(200, json=record)

    def _list_files(self, request: httpx.Request, body: bytes) -> httpx.Response:
        page = payload("files_list.json")
        page["data"] = [f for f in self.files.values() if f["purpose"] == "fine-tune"]
        return httpx.Response(200, json=page)

    # -- jobs -----------------------------------------------------------------------------------

    def _create_job(self, request: httpx.Request, body: bytes) -> httpx.Response:
        sent = json.loads(body)
        job_id = f"ftjob-{next(self._ids)}"
        job = payload("job.json")
        hyper = sent["method"][sent["method"]["type"]]["hyperparameters"]
        job |= {
            "id": job_id,
            "model": sent["model"],
            "training_file": sent["training_file"],
            "validation_file": sent.get("validation_file"),
            "status": "validating_files",
            "method": sent["method"],
            "metadata": sent.get("metadata"),
            "hyperparameters": {k: hyper[k] for k in ("n_epochs", "batch_size", "learning_rate_multiplier")},
        }
        self.jobs[job_id] = job
        self.progress[job_id] = 0
        self._event(job_id, "info", f"Created fine-tuning job: {job_id}")
        return httpx.Response(200, json=job)

    def _list_jobs(self, request: httpx.Request, body: bytes) -> httpx.Response:
        wanted = {k[len("metadata[") : -1]: v for k, v in request.url.params.items() if k.startswith("metadata[")}
        found = [j for j in self.jobs.values() if all((j.get("metadata") or {}).get(k) == v for k, v in wanted.items())]
        return httpx.Response(200, json={"object": "list", "data": found, "has_more": False})

    def _retrieve_job(self, request: httpx.Request, body: bytes, job_id: str) -> httpx.Response:
        job = self.jobs[job_id]
        if job["status"] in ("validating_files", "queued", "running"):
            self._advance(job)
        return httpx.Response(200, json=job)

    def _advance(self, job: dict[str, Any]) -> None:
        job_id = job["id"]
        step = self.progress[job_id] = self.progress[job_id] + 1
        job["status"] = "running"
        if self.outcome == "failed" and step >= 2:
            job |= {
                "status": "failed",
                "error": payload("job_failed_error.json"),
                "finished_at": 1721765000,
            }
            self._event(job_id, "error", job["error"]["message"])
            return
        metrics = {"step": step, "total_steps": self.steps, **self._step_metrics(step)}
        event = payload("metrics_event.json") | {
            "data": metrics,
            "message": f"Step {step}/{self.steps}",
        }
        self._append(job_id, event)
        if step >= self.steps and self.outcome == "succeeded":
            self._succeed(job)

    @staticmethod
    def _step_metrics(step: int) -> dict[str, float]:
        """The recorded result file's row for this step (synthesised past its end)."""
        rows = list(csv.DictReader(io.StringIO(payload("result_file.csv"))))
        if step <= len(rows):
            row = rows[step - 1]
        else:
            loss = 1.0 - 0.05 * step
            row = {
                "train_loss": loss,
                "train_accuracy": 0.7,
                "valid_loss": loss + 0.3,
                "valid_mean_token_accuracy": 0.6,
            }
        names = {
            "train_loss": "train_loss",
            "train_accuracy": "train_mean_token_accuracy",
            "valid_loss": "valid_loss",
            "valid_mean_token_accuracy": "valid_mean_token_accuracy",
        }
        return {names[k]: float(v) for k, v in row.items() if k in names and v not in ("", None)}

    def _succeed(self, job: dict[str, Any]) -> None:
        result_id = f"file-{next(self._ids)}"
        csv_text = payload("result_file.csv").encode()
        self.contents[result_id] = base64.b64encode(csv_text) if self.base64_result else csv_text
        self.files[result_id] = payload("file_object.json") | {
            "id": result_id,
            "filename": "step_metrics.csv",
            "purpose": "fine-tune-results",
        }
        job |= {
            "status": "succeeded",
            "result_files": [result_id],
            "trained_tokens": 1234,
            "finished_at": 1721765000,
            "fine_tuned_model": f"ft:{job['model']}:org:harness:{job['id'][-6:]}",
        }
        self._event(job["id"], "info", "The job has successfully completed")

    def _cancel_job(self, request: httpx.Request, body: bytes, job_id: str) -> httpx.Response:
        job = self.jobs[job_id]
        job["status"] = "cancelled"
        self._event(job_id, "info", "Fine-tuning job cancelled")
        return httpx.Response(200, json=job)

    def _event(self, job_id: str, level: str, message: str) -> None:
        event = copy.deepcopy(payload("events_list.json")["data"][0])
        self._append(job_id, event | {"level": level, "message": message})

    def _append(self, job_id: str, event: dict[str, Any]) -> None:
        events = self.events.setdefault(job_id, [])
        events.append(event | {"id": f"ftevent-{next(self._ids)}", "created_at": 1721764800 + len(events)})

    def _list_events(self, request: httpx.Request, body: bytes, job_id: str) -> httpx.Response:
        newest_first = self.events.get(job_id, [])[::-1]
        after = request.url.params.get("after")
        if after:
            ids = [e["id"] for e in newest_first]
            newest_first = newest_first[ids.index(after) + 1 :]
        limit = int(request.url.params.get("limit", 20))
        data = newest_first[:limit]
        return httpx.Response(200, json={"object": "list", "data": data, "has_more": len(newest_first) > limit})

    def _chat(self, request: httpx.Request, body: bytes) -> httpx.Response:
        sent = json.loads(body)
        reply = payload("chat_completion.json")
        reply["model"] = sent["model"]
        return httpx.Response(200, json=reply)
