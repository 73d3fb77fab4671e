import pytest

from harness.data.chat import DataError, Example
from harness.data.tokenize import IGNORE_INDEX, tokenize_all, tokenize_example


def conversation(*turns: tuple[str, str, int | None]) -> Example:
    messages = []
    for role, content, weight in turns:
        message = {"role": role, "content": content}
        if weight is not None:
            message["weight"] = weight
        messages.append(message)
    return Example(tuple(messages), "mem:1")


def trained_text(tokenizer, example: Example) -> str:
    item = tokenize_example(tokenizer, example)
    return tokenizer.decode([t for t, label in zip(item.input_ids, item.labels, strict=False) if label != IGNORE_INDEX])


def test_labels_cover_exactly_the_assistant_answer(smol_tokenizer) -> None:
    example = conversation(
        ("system", "Be kind.", None), ("user", "What is 2+2?", None), ("assistant", "It is 4.", None)
    )
    item = tokenize_example(smol_tokenizer, example)
    assert trained_text(smol_tokenizer, example) == "It is 4.<|im_end|>\n"
    assert all(label in (IGNORE_INDEX, token) for token, label in zip(item.input_ids, item.labels, strict=False))


def test_weight_zero_turns_are_not_trained(smol_tokenizer) -> None:
    example = conversation(
        ("system", "S", None),
        ("user", "first question", None),
        ("assistant", "draft answer", 0),
        ("user", "second question", None),
        ("assistant", "final answer", 1),
    )
    assert trained_text(smol_tokenizer, example) == "final answer<|im_end|>\n"


def test_multi_turn_trains_every_weighted_answer(smol_tokenizer) -> None:
    example = conversation(
        ("user", "a?", None), ("assistant", "one", None), ("user", "b?", None), ("assistant", "two", None)
    )
    assert trained_text(smol_tokenizer, example) == "one<|im_end|>\ntwo<|im_end|>\n"


def test_too_long_is_an_error_naming_the_line(smol_tokenizer) -> None:
    long = conversation(("user", "q", None), ("assistant", "word " * 300, None))
    with pytest.raises(DataError, match=r"mem:1: \d+ tokens exceeds max_seq_length 64"):
        tokenize_all(smol_tokenizer, [long], max_length=64)


def test_too_long_can_be_dropped_or_truncated(smol_tokenizer) -> None:
    short = conversation(("user", "q", None), ("assistant", "fine", None))
    long = conversation(("user", "q", None), ("assistant", "word " * 300, None))
    dropped = tokenize_all(smol_tokenizer, [short, long], max_length=64, too_long="drop")
    assert len(dropped.examples) == 1 and len(dropped.dropped) == 1
    truncated = tokenize_all(smol_tokenizer, [short, long], max_length=64, too_long="truncate")
    assert [len(e.input_ids) <= 64 for e in truncated.examples] == [True, True]
