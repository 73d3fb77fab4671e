"""Training throughput against the trainer a user would otherwise pick, side by side in one process.

Same model, data, LoRA settings (r 8, alpha 16, q/k/v/o), optimizer (AdamW, lr 2e-4), micro-batch
and number of steps for every contender:

- ``harness``: the harness's own trainer (LocalBackend.trial_trainer: packed rows, logits on
  trained targets only), LoRA; ``harness_full``: the same for full fine-tuning;
- ``bare``: a plain peft loop over exactly the batches the harness trained on (so
  ``overhead_ratio`` = harness / bare is the harness's own overhead);
- ``trl``: TRL's SFTTrainer set up as its documentation shows for conversational data with the loss
  on the answers only (prompt-completion form: its ``assistant_only_loss`` refuses SmolLM2's chat
  template), its defaults otherwise; ``trl_packed``: the same with ``packing=True`` (BFD, padding-free rows);
- ``seed001``: the seed 001 recipe, every example padded to 1024 tokens, full logits.

The token rate counts every non-pad token of the training examples processed per second (trained
or not), the same count for every contender, over the steps after ``--warmup``. Model FLOP
utilisation: ``mfu = rate x FLOPs per token (4N LoRA, 6N full) / matmul rate``, the matmul rate
measured here (2048x2048, bf16 where the CPU has it, else fp32). Last line:
``lora_tokens_per_s=.. full_tokens_per_s=.. lora_mfu=.. full_mfu=.. ratio_vs_trl=.. ratio_vs_trl_packed=..
overhead_ratio=.. ratio_vs_fixed_padding=..``

    .venv/bin/python bench/train_throughput.py [--steps 8] [--warmup 2] [--batch-size 4]
    .venv/bin/python bench/train_throughput.py --ablate   # what each speed change buys, back to back
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from peft import LoraConfig, get_peft_model
from transformers import TrainerCallback

from harness import models
from harness.backends.local import packed_attention
from harness.backends.local.backend import LocalBackend
from harness.backends.local.packing import trained_token_loss
from harness.config import StudyConfig, parse_study
from harness.device import cpu_features, use_bf16
from harness.search_space import TrialParams

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
LR = 2e-4


class StepClock(TrainerCallback):
    """Wall time at the end of every optimizer step."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_train_begin(self, *args: Any, **kwargs: Any) -> None:
        self.ends = [time.perf_counter()]

    def on_step_end(self, *args: Any, **kwargs: Any) -> None:
        self.ends.append(time.perf_counter())


class CountingCollator:
    """Wraps a collator; remembers each batch and its non-pad token count."""

    def __init__(self, inner: Callable[[Any], Any]) -> None:
        self.inner, self.batches, self.tokens = inner, [], []

    def __call__(self, features: Any) -> Any:
        batch = self.inner(features)
        mask = batch.get("attention_mask")
        self.tokens.append(int(mask.sum()) if mask is not None else int(batch["input_ids"].numel()))
        self.batches.append(batch)
        return batch


def rate(tokens: list[int], ends: list[float], warmup: int, accumulation: int = 1) -> float:
    """Tokens per second over the steps after ``warmup`` (a step spans ``accumulation`` batches)."""
    measured = tokens[warmup * accumulation : (len(ends) - 1) * accumulation]
    return sum(measured) / (ends[-1] - ends[warmup])


def study_config(args: argparse.Namespace, work: Path) -> StudyConfig:
    return parse_study(
        {
            "study_name": "bench",
            "base_model": args.base_model,
            "system_prompt": "You are a professional and friendly programmer.",
            "max_seq_length": 1024,
            "data": {"train_file": args.train_file, "validation_file": args.validation_file},
            "training": {
                "eval_steps": 10**6,
                "save_strategy": "no",
                "work_dir": str(work),
                "max_micro_batch_size": args.batch_size,
                "precision": args.precision,
                "base_learning_rate": {"lora": LR, "full": 2e-5},
            },
        }
    )


def trial_params(args: argparse.Namespace, method: str) -> TrialParams:
    lora = {"lora_rank": 8, "lora_alpha": 16, "lora_target_modules": TARGETS} if method == "lora" else {}
    return TrialParams(
        training_args={"max_steps": args.steps + args.warmup, "lr_scheduler_type": "constant", "warmup_steps": 0},
        epochs=1,
        batch_size=args.batch_size,
        lr_multiplier=1.0,
        dropout=0.0,
        method=method,
        **lora,
    )


def through_harness(backend: LocalBackend, args: argparse.Namespace, method: str, work: Path) -> tuple[float, list]:
    params = trial_params(args, method)
    model = backend.trial_model(params)
    clock = StepClock()
    trainer = backend.trial_trainer(backend.plan(params), model, work, [clock], quiet=True)
    counter = CountingCollator(trainer.data_collator)
    trainer.data_collator = counter
    trainer.train()
    if method == "lora":
        model.unload()
    return rate(counter.tokens, clock.ends, args.warmup), counter.batches


def lora_model(backend: LocalBackend) -> Any:
    config = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=list(TARGETS), task_type="CAUSAL_LM")
    return get_peft_model(models.load_base(backend.config.base_model), config)


def train_step(model: Any, optimizer: Any, batch: dict[str, Any], bf16: bool, trained_only: bool = True) -> None:
    """One plain optimizer step: forward under bf16 autocast where asked, loss, backward, update."""
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        if trained_only:
            value = trained_token_loss(model(**inputs), batch["labels"])
        else:
            value = model(**inputs, labels=batch["labels"]).loss
    value.backward()
    optimizer.step()
    optimizer.zero_grad()


def bare_loop(backend: LocalBackend, batches: list[dict[str, Any]], bf16: bool, warmup: int, loss: str) -> float:
    """A plain peft loop on given batches: AdamW, bf16 autocast where the harness uses it."""
    model = lora_model(backend)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR)
    model.train()
    tokens, ends = [], [time.perf_counter()]
    for batch in batches:
        train_step(model, optimizer, batch, bf16, trained_only=loss == "trained")
        mask = batch.get("attention_mask")
        tokens.append(int(mask.sum()) if mask is not None else int(batch["input_ids"].numel()))
        ends.append(time.perf_counter())
    model.unload()
    return rate(tokens, ends, warmup)


def padded_batches(backend: LocalBackend, args: argparse.Namespace, length: int) -> list[dict[str, Any]]:
    """Seed 001: every example padded to ``length``, shuffled batches, full logits."""
    from transformers import DataCollatorForSeq2Seq

    tokenizer = models.load_tokenizer(backend.config.base_model)
    collate = DataCollatorForSeq2Seq(tokenizer, padding="max_length", max_length=length, label_pad_token_id=-100)
    examples = backend.objective.train_set.examples
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(examples), generator=generator).tolist()
    steps = args.warmup + max(2, args.steps // 2)  # each step is long: fewer of them
    picks = [order[(i * args.batch_size + j) % len(order)] for i in range(steps) for j in range(args.batch_size)]
    features = [
        {
            "input_ids": examples[k].input_ids,
            "attention_mask": [1] * len(examples[k].input_ids),
            "labels": examples[k].labels,
        }
        for k in picks
    ]
    return [collate(features[i : i + args.batch_size]) for i in range(0, len(features), args.batch_size)]


def conversational_row(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """TRL's conversational prompt-completion form: the loss on the completion only (its default).

    TRL's own assistant-only option (``assistant_only_loss`` on ``messages``) refuses SmolLM2's
    chat template (no ``{% generation %}`` markers, and TRL 1.16 cannot patch it); this is the
    form its documentation gives for completion-only loss on conversations.
    """
    plain = [{"role": m["role"], "content": m["content"]} for m in messages]
    last = max(i for i, m in enumerate(plain) if m["role"] == "assistant")
    return {"prompt": plain[:last], "completion": [plain[last]]}


def through_trl(backend: LocalBackend, args: argparse.Namespace, bf16: bool, packed: bool, work: Path) -> float:
    """TRL's SFTTrainer as its docs show for conversational data, the loss on the answers only."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    rows = [conversational_row(e.messages) for e in backend.objective.train_examples]
    config = SFTConfig(
        output_dir=str(work),
        max_steps=args.steps + args.warmup,
        per_device_train_batch_size=args.batch_size,
        learning_rate=LR,
        lr_scheduler_type="constant",
        bf16=bf16,
        use_cpu=not torch.cuda.is_available(),
        report_to="none",
        save_strategy="no",
        logging_steps=10**6,
        max_length=1024,
        disable_tqdm=True,
        packing=packed,
        seed=0,
    )
    peft_config = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=list(TARGETS), task_type="CAUSAL_LM")
    clock = StepClock()
    model = copy.deepcopy(models.load_base(backend.config.base_model))
    model.set_attn_implementation("sdpa")  # TRL as a user runs it: transformers' own attention, not the harness's
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=models.load_tokenizer(backend.config.base_model),
        peft_config=peft_config,
        callbacks=[clock],
    )
    counter = CountingCollator(trainer.data_collator)
    trainer.data_collator = counter
    trainer.train()
    trainer.model.unload()
    return rate(counter.tokens, clock.ends, args.warmup)


@contextmanager
def block_mask_attention(backend: LocalBackend) -> Iterator[None]:
    """Transformers' SDPA with a block-diagonal mask over the whole packed row."""
    model = backend.lora_base()
    model.set_attn_implementation("sdpa")
    try:
        yield
    finally:
        model.set_attn_implementation(packed_attention.NAME)


@contextmanager
def bf16_attention(backend: LocalBackend) -> Iterator[None]:
    """Per-example attention in the autocast dtype, whatever training.attention_precision picks."""
    model = backend.lora_base()
    packed_attention.use_for(model, "autocast")
    try:
        yield
    finally:
        packed_attention.use_for(model, backend.config.training.attention_precision)


@contextmanager
def fp32_frozen_base(backend: LocalBackend) -> Iterator[None]:
    """LoRA on the fp32 base: autocast casts every frozen weight to bf16 at every step."""
    backend.lora_base = lambda: models.load_base(backend.config.base_model)  # type: ignore[method-assign]
    try:
        yield
    finally:
        del backend.lora_base


ABLATIONS = {
    "per-example attention (vs a block mask over the row)": block_mask_attention,
    "fp32 attention where measured faster (vs bf16)": bf16_attention,
    "bf16 frozen base weights (vs fp32 cast per step)": fp32_frozen_base,
}


def ablate(backend: LocalBackend, args: argparse.Namespace, work: Path, rounds: int = 2) -> None:
    """Each change against the harness without it, on the same batches: without and with alternate
    ``rounds`` times and the best of each counts, so a noisy neighbour on the machine hurts neither."""
    print(f"{'change':<56} {'without':>8} {'with':>8} {'ratio':>6}")
    for i, (change, without) in enumerate(ABLATIONS.items()):
        before, after = 0.0, 0.0
        for r in range(rounds):
            with without(backend):
                before = max(before, through_harness(backend, args, "lora", work / f"without{i}-{r}")[0])
            after = max(after, through_harness(backend, args, "lora", work / f"with{i}-{r}")[0])
        print(f"{change:<56} {before:8.1f} {after:8.1f} {after / before:6.2f}", flush=True)


def matmul_gflops(bf16: bool, n: int = 2048, repeats: int = 5, rounds: int = 6) -> float:
    """The machine's matmul limit: the best of several timed rounds (the first ones warm up)."""
    dtype = torch.bfloat16 if bf16 else torch.float32
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 * repeats / best / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-model", default="smollm2")
    parser.add_argument("--train-file", default="experiments/data/programmer_train.jsonl")
    parser.add_argument("--validation-file", default="experiments/data/programmer_heldout.jsonl")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    parser.add_argument("--skip", default="", help="comma-separated contenders to leave out")
    parser.add_argument("--ablate", action="store_true", help="only: what each speed change buys (LoRA)")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    work = Path(tempfile.mkdtemp(prefix="harness-bench-"))
    backend = LocalBackend(study_config(args, work))
    facts = backend.prepare()
    if args.ablate:
        print(f"cpu {cpu_features()} batching={facts['batching']}")
        return ablate(backend, args, work)
    bf16 = use_bf16(args.precision)
    n_params = sum(p.numel() for p in models.load_base(args.base_model).parameters())
    peak = matmul_gflops(bf16)
    print(f"cpu {cpu_features()} bf16={bf16} batching={facts['batching']}")
    print(f"N={n_params / 1e6:.1f}M params; matmul 2048^2 {'bf16' if bf16 else 'fp32'}: {peak:.0f} GFLOP/s")
    # One untimed short run first: the process's one-time costs (allocator, kernel choices, the
    # attention's precision measure) would otherwise fall on whichever contender runs first.
    through_harness(backend, argparse.Namespace(**{**vars(args), "steps": 2}), "lora", work / "warm")
    rates: dict[str, float] = {}
    rates["harness"], batches = through_harness(backend, args, "lora", work / "lora")
    contenders: dict[str, Callable[[], float]] = {
        "bare": lambda: bare_loop(backend, batches, bf16, args.warmup, "trained"),
        "harness_full": lambda: through_harness(backend, args, "full", work / "full")[0],
        "trl": lambda: through_trl(backend, args, bf16, False, work / "trl"),
        "trl_packed": lambda: through_trl(backend, args, bf16, True, work / "trl_packed"),
        "seed001": lambda: bare_loop(backend, padded_batches(backend, args, 1024), bf16, args.warmup, "full"),
    }
    print(f"{'harness':>13}: {rates['harness']:8.1f} non-pad tokens/s", flush=True)
    for name, run in contenders.items():
        if name not in skip:
            rates[name] = run()
            print(f"{name:>13}: {rates[name]:8.1f} non-pad tokens/s", flush=True)
    peak = max(peak, matmul_gflops(bf16))  # the limit: the better of before and after the contenders
    print(f"\nmatmul peak {peak:.0f} GFLOP/s")
    for name, value in rates.items():
        flops = (6 if name == "harness_full" else 4) * n_params
        print(f"{name:>13}: {value:8.1f} non-pad tokens/s  mfu {value * flops / (peak * 1e9):.3f}")
    lora_mfu = rates["harness"] * 4 * n_params / (peak * 1e9)
    full_mfu = rates.get("harness_full", 0.0) * 6 * n_params / (peak * 1e9)

    def ratio(name: str) -> str:
        return f"{rates['harness'] / rates[name]:.2f}" if name in rates else "nan"

    print(
        f"lora_tokens_per_s={rates['harness']:.1f} full_tokens_per_s={rates.get('harness_full', 0.0):.1f} "
        f"lora_mfu={lora_mfu:.3f} full_mfu={full_mfu:.3f} ratio_vs_trl={ratio('trl')} "
        f"ratio_vs_trl_packed={ratio('trl_packed')} overhead_ratio={ratio('bare')} "
        f"ratio_vs_fixed_padding={ratio('seed001')}"
    )


if __name__ == "__main__":
    main()
