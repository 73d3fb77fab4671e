"""Real small things: a tiny random Llama with SmolLM2's tokenizer, MLflow and Optuna in tmp_path."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SYSTEM = "You are a professional and friendly programmer."


@pytest.fixture(autouse=True)
def _no_ambient_tracking_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test names its MLflow store. mlflow.set_tracking_uri (MLflow's own, or a test reading
    traces back) also writes MLFLOW_TRACKING_URI into this process's environment, which the CLI's
    --tracking-uri reads and every subprocess inherits: a later test would find its runs missing."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="session")
def smol_tokenizer() -> Any:
    """SmolLM2's real tokenizer (ChatML template), read straight from the packaged GGUF."""
    from transformers import AutoTokenizer

    from harness.models import packaged_gguf

    gguf = packaged_gguf("smollm2")
    return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory, smol_tokenizer: Any) -> Path:
    """A randomly initialised 2-layer Llama (about 3M params) saved like any local model."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(smol_tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=smol_tokenizer.bos_token_id,
        eos_token_id=smol_tokenizer.eos_token_id,
    )
    directory = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(directory)
    smol_tokenizer.save_pretrained(directory)
    return directory


def chat_record(question: str, answer: str, **assistant: Any) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer, **assistant},
        ]
    }


def write_jsonl(path: Path, records: list[Any]) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def chat_files(tmp_path: Path) -> tuple[Path, Path]:
    train = [
        chat_record(f"How do I reverse list number {i} in Python?", f"Use reversed() or slicing [::-1] ({i}).")
        for i in range(12)
    ]
    heldout = [chat_record(f"What does git stash do, case {i}?", "It shelves uncommitted changes.") for i in range(4)]
    return write_jsonl(tmp_path / "train.jsonl", train), write_jsonl(tmp_path / "heldout.jsonl", heldout)


@pytest.fixture
def study_yaml(tmp_path: Path, chat_files: tuple[Path, Path], tiny_llama_dir: Path) -> Path:
    """A 2-trial study on the tiny Llama with every store inside tmp_path."""
    train, heldout = chat_files
    config = {
        "study_name": "tiny",
        "base_model": str(tiny_llama_dir),
        "system_prompt": SYSTEM,
        "max_seq_length": 256,
        "data": {"train_file": str(train), "validation_file": str(heldout)},
        "search_space": {
            "epochs": 1,
            "batch_size": [2, 4],
            "lr_multiplier": {"low": 0.5, "high": 2.0, "log": True},
            "dropout": {"low": 0.0, "high": 0.1},
            "method": ["lora", "full"],
        },
        "training": {"eval_steps": 2, "work_dir": str(tmp_path / "work"), "precision": "fp32"},
        "sampler": {"type": "random", "seed": 1},
        "pruner": {"type": "none"},
        "n_trials": 2,
        "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlruns/mlflow.db"},
        "storage": f"sqlite:///{tmp_path}/mlruns/optuna.db",
    }
    import yaml

    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


POSTGRES_URL = os.environ.get("HARNESS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def postgres_databases() -> Iterator[Callable[[], str]]:
    """Make new, empty databases (URL each); all dropped, open connections included, at teardown."""
    import psycopg
    from sqlalchemy.engine import make_url

    server = make_url(POSTGRES_URL)
    libpq = server.set(drivername="postgresql").render_as_string(hide_password=False)  # no "+driver"

    def admin() -> Any:
        # A connection per statement: a test may restart the server under a long-lived one.
        # autocommit: CREATE/DROP DATABASE cannot run inside a transaction.
        return psycopg.connect(libpq, connect_timeout=5, autocommit=True)

    try:
        admin().close()
    except psycopg.OperationalError as exc:
        reason = f"PostgreSQL not reachable at {server.render_as_string()}: {' '.join(str(exc).split())}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    names: list[str] = []

    def create() -> str:
        names.append(f"harness_test_{uuid.uuid4().hex[:12]}")
        with admin() as connection:
            connection.execute(f'CREATE DATABASE "{names[-1]}"')
        return server.set(database=names[-1]).render_as_string(hide_password=False)

    try:
        yield create
    finally:
        with admin() as connection:
            for name in names:  # FORCE: a connection pool may still hold connections to it
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_databases: Callable[[], str]) -> str:
    """The URL of a new, empty database, dropped at teardown."""
    return postgres_databases()


class MlflowServer:
    """A real ``mlflow server`` process on a fixed loopback port; stop and start it at will."""

    def __init__(self, backend_store: str, root: Path) -> None:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.backend_store, self.root = backend_store, root
        self.log_path = root / "mlflow-server.log"
        self.process: Any = None

    def start(self) -> None:
        import subprocess
        import sys
        import time
        import urllib.request

        mlflow = Path(sys.executable).with_name("mlflow")
        command = [str(mlflow), "server", "--backend-store-uri", self.backend_store, "--serve-artifacts"]
        command += ["--artifacts-destination", str(self.root / "served-artifacts"), "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--workers", "1"]
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start: {self.log_path.read_text()[-2000:]}")
            time.sleep(0.5)

    def stop(self) -> None:
        import subprocess

        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


@pytest.fixture
def mlflow_server_process(postgres_databases: Callable[[], str], tmp_path: Path) -> Iterator[MlflowServer]:
    """A real ``mlflow server``: PostgreSQL backend store, artifacts served over HTTP from
    tmp_path/served-artifacts. Stopped at teardown."""
    server = MlflowServer(postgres_databases(), tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def mlflow_server(mlflow_server_process: MlflowServer) -> str:
    """The URL of a real ``mlflow server`` (see mlflow_server_process)."""
    return mlflow_server_process.url
