"""Greedy generation on the tiny random Llama: order, stopping, budgets, and the caller's model untouched."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from harness import generation
from harness.generation import generate, stop_token_ids
from harness.greedy_decoding import generation_copy, greedy, greedy_supported

SYSTEM = "You are a professional and friendly programmer."
QUESTIONS = [
    "Hi",
    "How do I reverse a list in Python without changing the original list?",
    "What does git stash do?",
    "Explain the difference between a process and a thread, with an example in Python and one in Go.",
    "Why?",
]


def prompts(questions: list[str] = QUESTIONS) -> list[list[dict[str, str]]]:
    return [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}] for q in questions]


def token_rows(tokenizer: Any, questions: list[str] = QUESTIONS) -> list[list[int]]:
    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts(questions)]
    return [tokenizer(t, add_special_tokens=False).input_ids for t in texts]


@pytest.fixture
def tiny(tiny_llama_dir: Path) -> Any:
    """The tiny Llama's architecture with untied, wider random weights (fp32, eval mode), free to modify.

    The fixture's own weights answer every prompt with the same repeated token, which would make order
    and batching checks vacuous; these answer each prompt differently."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig.from_pretrained(tiny_llama_dir)
    config.tie_word_embeddings, config.initializer_range = False, 0.2
    torch.manual_seed(0)
    return LlamaForCausalLM(config).eval()


def snapshot(model: Any) -> dict[str, Any]:
    return {
        "weights": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "requires_grad": {k: p.requires_grad for k, p in model.named_parameters()},
        "training": [m.training for m in model.modules()],
        "attention": model.config._attn_implementation,
        "dtypes": {p.dtype for p in model.parameters()},
    }


def assert_unchanged(model: Any, before: dict[str, Any], flags: tuple[str, ...] = ("requires_grad",)) -> None:
    after = snapshot(model)
    assert after["weights"].keys() == before["weights"].keys()
    assert all(torch.equal(after["weights"][k], v) for k, v in before["weights"].items())
    for key in (*flags, "training", "attention", "dtypes"):
        assert after[key] == before[key], key


def with_stop_bias(model: Any, token: int) -> Any:
    """The model with an lm_head bias that makes ``token`` every step's argmax."""
    head = model.lm_head
    biased = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    with torch.no_grad():
        biased.weight.copy_(head.weight)
        biased.bias.zero_()
        biased.bias[token] = 1e4
    model.lm_head = biased
    return model


def test_answers_come_back_in_prompt_order_whatever_the_batch_size(tiny: Any, smol_tokenizer: Any) -> None:
    alone = [generate(tiny, smol_tokenizer, [p], max_new_tokens=12)[0] for p in prompts()]
    assert len(set(alone)) == len(alone)  # distinct answers: a mix-up would show
    for batch_size in (1, 2, 3, len(QUESTIONS)):
        assert generate(tiny, smol_tokenizer, prompts(), max_new_tokens=12, batch_size=batch_size) == alone
    # The greedy loop gives transformers' own greedy answers (fp32, same padding).
    assert generate(tiny, smol_tokenizer, prompts(), max_new_tokens=12, batch_size=8, engine="hf") == alone


def test_the_stop_tokens_include_the_templates_end_of_turn(tiny: Any, smol_tokenizer: Any) -> None:
    im_end = smol_tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert generation.end_of_turn_id(smol_tokenizer) == im_end
    tiny.generation_config.eos_token_id = 0  # a model that only knows <|endoftext|>
    tiny.config.eos_token_id = 0
    assert im_end in stop_token_ids(tiny, smol_tokenizer)
    assert 0 in stop_token_ids(tiny, smol_tokenizer)


def test_generation_stops_at_im_end(tiny: Any, smol_tokenizer: Any) -> None:
    im_end = smol_tokenizer.convert_tokens_to_ids("<|im_end|>")
    model = with_stop_bias(tiny, im_end)
    tiny.generation_config.eos_token_id = 0  # only the chat template says <|im_end|> ends a turn
    rows = token_rows(smol_tokenizer)
    stops = stop_token_ids(model, smol_tokenizer)
    with torch.inference_mode():
        assert greedy(generation_copy(model, bf16=False), rows, 50, stops, 2) == [[im_end]] * len(rows)
    assert generate(model, smol_tokenizer, prompts(), max_new_tokens=50) == [""] * len(rows)
    assert generate(model, smol_tokenizer, prompts(), max_new_tokens=50, engine="hf") == [""] * len(rows)


def test_finished_rows_leave_the_batch_without_changing_the_others(tiny: Any, smol_tokenizer: Any) -> None:
    rows = token_rows(smol_tokenizer)
    runner = generation_copy(tiny, bf16=False)
    with torch.inference_mode():
        free = greedy(runner, rows, 16, [], 2)
        # A token that one row emits before its last step and no other row ever emits: that row alone stops.
        row, step, token = next(
            (r, i, t)
            for r, tokens in enumerate(free)
            for i, t in enumerate(tokens[:-1])
            if all(t not in other for o, other in enumerate(free) if o != r)
        )
        stopped = greedy(runner, rows, 16, [token], 2)
    assert stopped[row] == free[row][: step + 1]
    assert [t for r, t in enumerate(stopped) if r != row] == [t for r, t in enumerate(free) if r != row]


def test_max_new_tokens_caps_every_row(tiny: Any, smol_tokenizer: Any) -> None:
    rows = token_rows(smol_tokenizer)
    runner = generation_copy(tiny, bf16=False)
    with torch.inference_mode():
        short, long = greedy(runner, rows, 4, [], 2), greedy(runner, rows, 12, [], 2)
    assert [len(r) for r in short] == [4] * len(rows)
    assert [r[:4] for r in long] == short


def test_the_callers_model_is_left_as_it_was(tiny: Any, smol_tokenizer: Any) -> None:
    tiny.train()
    tiny.model.layers[0].requires_grad_(False)
    before = snapshot(tiny)
    for bf16 in (False, True):
        generate(tiny, smol_tokenizer, prompts(), max_new_tokens=6, bf16=bf16)
        assert_unchanged(tiny, before)
    generate(tiny, smol_tokenizer, prompts(), max_new_tokens=6, bf16=True, engine="hf")
    assert_unchanged(tiny, before)


def test_a_lora_model_answers_with_its_adapter_and_keeps_its_base(tiny: Any, smol_tokenizer: Any) -> None:
    from peft import LoraConfig, get_peft_model

    base_before = snapshot(tiny)
    plain = generate(tiny, smol_tokenizer, prompts(), max_new_tokens=10)
    lora = get_peft_model(tiny, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in lora.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.5)  # a trained adapter: not the no-op initialisation
    lora_before = snapshot(lora)
    merged = generate(lora, smol_tokenizer, prompts(), max_new_tokens=10)
    assert_unchanged(lora, lora_before)  # adapters still there, not merged into the shared base
    assert merged == generate(lora, smol_tokenizer, prompts(), max_new_tokens=10, engine="hf")
    assert merged != plain
    lora.unload()
    assert_unchanged(tiny, base_before, flags=())  # bit-identical (peft itself froze the weights)


def test_bf16_answers_come_from_a_bf16_copy(tiny: Any, smol_tokenizer: Any) -> None:
    answers = generate(tiny, smol_tokenizer, prompts(), max_new_tokens=8, bf16=True)
    assert len(answers) == len(QUESTIONS) and all(isinstance(a, str) for a in answers)
    assert {p.dtype for p in tiny.parameters()} == {torch.float32}


def test_models_the_loop_does_not_cover_fall_back_to_generate(tiny: Any, smol_tokenizer: Any) -> None:
    assert greedy_supported(tiny)
    tiny.generation_config.repetition_penalty = 1.3  # a logits processor the loop does not apply
    assert not greedy_supported(tiny)
    assert generate(tiny, smol_tokenizer, prompts(), max_new_tokens=8) == generate(
        tiny, smol_tokenizer, prompts(), max_new_tokens=8, engine="hf"
    )


def test_no_prompts_no_answers(tiny: Any, smol_tokenizer: Any) -> None:
    assert generate(tiny, smol_tokenizer, [], max_new_tokens=8) == []


# --- the local backend's evaluation hooks ---------------------------------------------------------------


@pytest.fixture
def backend(study_yaml: Path) -> Any:
    from harness.backends.local.backend import LocalBackend
    from harness.config import load_config

    local = LocalBackend(load_config(study_yaml))
    local.prepare()
    return local


def test_the_answerer_takes_a_per_call_budget(backend: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(generation, "generate", lambda *a, **kw: calls.append(kw) or ["x"] * len(a[2]))
    answer = backend.answerer(object())
    assert answer(prompts()[:2]) == ["x", "x"]
    assert answer(prompts()[:1], max_new_tokens=5) == ["x"]
    assert [c["max_new_tokens"] for c in calls] == [backend.config.evaluation.max_new_tokens, 5]


def test_count_tokens_uses_the_base_tokenizer(backend: Any, smol_tokenizer: Any) -> None:
    texts = ["Use reversed() or slicing [::-1].", "", "<|im_end|> is a special token"]
    expected = [len(smol_tokenizer(t, add_special_tokens=False).input_ids) for t in texts]
    assert backend.count_tokens(texts) == expected
    assert expected[1] == 0


def test_baseline_metrics_leave_the_shared_base_unchanged(backend: Any, tmp_path: Path) -> None:
    from harness import models

    base = models.load_base(backend.config.base_model)
    base.train()
    before = snapshot(base)
    use_cache = base.config.use_cache
    metrics = backend.baseline_metrics()
    assert set(metrics) == {"eval_loss"} and math.isfinite(metrics["eval_loss"]) and metrics["eval_loss"] > 0
    assert_unchanged(base, before)
    assert base.config.use_cache == use_cache
    assert not any(p.grad is not None for p in base.parameters())
    assert not (tmp_path / "work").exists()  # nothing written to the study's work dir
    assert backend.baseline_metrics() == metrics  # no dropout, no training: the same number again


def test_baseline_metrics_in_bf16_leave_the_base_forward_as_it_was(study_yaml: Path) -> None:
    """accelerate marks the model it prepares (a later trial's copy of the base would skip its own
    preparation, bf16 autocast included) and under bf16 sets an autocast wrapper as its own forward."""
    import yaml

    from harness import models
    from harness.backends.local.backend import LocalBackend
    from harness.config import load_config

    raw = yaml.safe_load(study_yaml.read_text())
    raw["training"]["precision"] = "bf16"
    study_yaml.write_text(yaml.safe_dump(raw))
    local = LocalBackend(load_config(study_yaml))
    local.prepare()
    base = models.load_base(local.config.base_model)
    before = set(vars(base))
    assert math.isfinite(local.baseline_metrics()["eval_loss"])
    assert set(vars(base)) == before
    assert not getattr(base, "_is_accelerate_prepared", False)
    dtypes: list[torch.dtype] = []
    layer = base.get_output_embeddings()
    handle = layer.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
    try:
        with torch.no_grad():
            base(torch.tensor([[1, 2, 3]]))
    finally:
        handle.remove()
    assert dtypes == [torch.float32]  # no autocast left around the base's forward


def test_baseline_eval_loss_is_a_trials_evaluate_without_training(backend: Any, tmp_path: Path) -> None:
    from harness import models
    from harness.hyperparams import TrialParams

    base = models.load_base(backend.config.base_model)
    params = TrialParams(method="full", epochs=1, batch_size=2, lr_multiplier=1.0, dropout=0.0)
    args = backend.training_arguments(params, tmp_path / "reference", disable_tqdm=True)
    was_training = base.training
    try:
        expected = backend.objective.trainer_for(copy.deepcopy(base), args, []).evaluate()["eval_loss"]
    finally:
        base.train(was_training)
    assert backend.baseline_metrics()["eval_loss"] == pytest.approx(expected, rel=1e-6)
