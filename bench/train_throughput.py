"""Training throughput, three ways side by side in one process on the same data and model.

1. through the harness (LocalBackend: Trainer, dynamic padding, length-grouped batches);
2. a bare transformers+peft loop (dynamic padding, shuffled batches, AdamW);
3. the seed 001 recipe: the same bare loop with every example padded to 1024 tokens.

Throughput counts trained, non-pad tokens per second of the training loop.
Last line: ``ratio_vs_bare=X ratio_vs_fixed_padding=Y``.

    .venv/bin/python bench/train_throughput.py [--examples 32] [--epochs 1]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from peft import LoraConfig, get_peft_model
from torch.utils.data import DataLoader
from transformers import DataCollatorForSeq2Seq

from harness import models
from harness.backends.base import TrialContext
from harness.backends.local.backend import LocalBackend
from harness.config import StudyConfig
from harness.data.tokenize import IGNORE_INDEX
from harness.device import use_bf16
from harness.search_space import TrialParams

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


def study_config(args: argparse.Namespace, work: Path) -> StudyConfig:
    return StudyConfig.model_validate(
        {
            "study_name": "bench",
            "base_model": args.base_model,
            "system_prompt": "You are a professional and friendly programmer.",
            "data": {"train_file": args.train_file, "validation_file": args.validation_file},
            "training": {
                "eval_steps": 10**6,  # no evaluation inside the measured loop
                "save_strategy": "no",
                "work_dir": str(work),
                "max_micro_batch_size": args.batch_size,
                "precision": args.precision,
            },
        }
    )


def params(args: argparse.Namespace) -> TrialParams:
    return TrialParams(
        epochs=args.epochs, batch_size=args.batch_size, lr_multiplier=1.0, dropout=0.05,
        method="lora", lora_rank=8, lora_alpha=16, lora_target_modules=TARGETS,
    )


def through_harness(backend: LocalBackend, trial: TrialParams) -> float:
    logged: dict[str, float] = {}
    # One fixed work dir, overwritten by every measurement (a real trial gets its run id's).
    ctx = TrialContext(number=0, log_metrics=lambda m, step: logged.update(m), report=lambda v, s: None, run_id="bench")
    result = backend.train(trial, ctx)
    result.release()
    return logged["train_runtime_s"]


def bare_loop(
    backend: LocalBackend, trial: TrialParams, fixed_length: int | None, max_steps: int | None = None
) -> float:
    """A plain peft training loop; returns seconds spent in the loop."""
    tokenizer = models.load_tokenizer(backend.config.base_model)
    lora = LoraConfig(
        r=8, lora_alpha=16, lora_dropout=trial.dropout, target_modules=list(TARGETS), task_type="CAUSAL_LM"
    )
    model = get_peft_model(models.load_base(backend.config.base_model), lora)
    padding: dict[str, Any] = {"padding": True}
    if fixed_length:
        padding = {"padding": "max_length", "max_length": fixed_length}
    collate = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=IGNORE_INDEX, **padding)
    features = [
        {"input_ids": e.input_ids, "attention_mask": [1] * len(e.input_ids), "labels": e.labels}
        for e in backend.train_set.examples
    ]
    loader = DataLoader(features, batch_size=trial.batch_size, shuffle=True, collate_fn=collate)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    bf16 = use_bf16(backend.config.training.precision)
    model.train()
    steps = 0
    start = time.perf_counter()
    for _ in range(trial.epochs):
        for batch in loader:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            steps += 1
            if max_steps is not None and steps >= max_steps:
                break
    elapsed = time.perf_counter() - start
    model.unload()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-model", default="smollm2")
    parser.add_argument("--train-file", default="experiments/data/programmer_train.jsonl")
    parser.add_argument("--validation-file", default="experiments/data/programmer_heldout.jsonl")
    parser.add_argument("--examples", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    args = parser.parse_args()

    backend = LocalBackend(study_config(args, Path("/tmp/harness-bench")))
    backend.prepare()
    backend.train_set.examples[:] = backend.train_set.examples[: args.examples]
    tokens = sum(len(e.input_ids) for e in backend.train_set.examples) * args.epochs
    trial = params(args)
    print(f"{len(backend.train_set.examples)} examples x {args.epochs} epoch(s), {tokens} non-pad tokens, "
          f"batch {args.batch_size}, bf16={use_bf16(args.precision)}, threads={torch.get_num_threads()}")
    bare_loop(backend, trial, None, max_steps=2)  # warm kernels and allocator for everyone
    rates = {}
    for name, run in (
        ("harness", lambda: through_harness(backend, trial)),
        ("bare", lambda: bare_loop(backend, trial, None)),
        ("fixed_1024", lambda: bare_loop(backend, trial, 1024)),
    ):
        seconds = run()
        rates[name] = tokens / seconds
        print(f"{name:>11}: {seconds:7.1f} s  {rates[name]:8.1f} trained non-pad tokens/s")
    print(f"ratio_vs_bare={rates['harness'] / rates['bare']:.2f} "
          f"ratio_vs_fixed_padding={rates['harness'] / rates['fixed_1024']:.2f}")


if __name__ == "__main__":
    main()
