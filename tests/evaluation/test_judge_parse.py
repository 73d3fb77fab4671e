from __future__ import annotations

import math

import pytest

from harness.evaluation.judge_parse import (
    ParseError,
    TokenLogprobs,
    parse_reply,
    weighted_scores,
)

KEYS = ("structure", "content", "detail", "style")
GOOD = '{"structure": 7, "content": 6, "detail": 5, "style": 8, "overall": 7, "reasons": "ok"}'


def test_parse_json_reply() -> None:
    scores, reasons = parse_reply(GOOD, KEYS, 1, 9)
    assert scores == {"structure": 7, "content": 6, "detail": 5, "style": 8, "overall": 7}
    assert reasons == "ok"


def test_parse_fenced_and_truncated_replies() -> None:
    fenced = f"```json\n{GOOD}\n```"
    assert parse_reply(fenced, KEYS, 1, 9)[0]["style"] == 8
    truncated = '{"structure": 2, "content": 3, "detail": 4, "style": 5, "overall": 3, "reasons": "Th'
    scores, reasons = parse_reply(truncated, KEYS, 1, 9)
    assert scores["overall"] == 3 and reasons == ""


def test_overall_is_optional() -> None:
    scores, _ = parse_reply('{"structure": 1, "content": 2, "detail": 3, "style": 4}', KEYS, 1, 9)
    assert "overall" not in scores


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("I can't help with that.", "refusal"),
        ("I'm sorry, but I cannot evaluate this.", "refusal"),
        ("That's a great question! What do you need?", "unparsable"),
        ('{"structure": 12, "content": 6, "detail": 5, "style": 8}', "unparsable"),  # off scale
        ('{"structure": "high", "content": 6, "detail": 5, "style": 8}', "unparsable"),
        ("", "unparsable"),
    ],
)
def test_unusable_replies(text: str, kind: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_reply(text, KEYS, 1, 9)
    assert caught.value.kind == kind


def _tokens(*pieces: str | tuple[str, list[tuple[str, float]]]) -> list[TokenLogprobs]:
    out = []
    for piece in pieces:
        if isinstance(piece, tuple):
            token, top = piece
            out.append(TokenLogprobs(token, tuple((t, math.log(p)) for t, p in top)))
        else:
            out.append(TokenLogprobs(piece, ((piece, 0.0),)))
    return out


def test_weighted_scores_take_the_expectation_over_digit_candidates() -> None:
    tokens = _tokens(
        '{"structure":',
        (" 7", [(" 7", 0.5), ("7", 0.1), (" 8", 0.3), (" x", 0.1)]),
        ', "content": ',
        ("6", [("6", 1.0)]),
        ', "style": 10, "detail": 5',  # not a token of its own: left to the parsed value
        "}",
    )
    weighted = weighted_scores(tokens, ("structure", "content", "detail", "style"), 1, 9)
    # x is not a digit; " 7" and "7" are the same score: (0.6 * 7 + 0.3 * 8) / 0.9
    assert weighted["structure"] == pytest.approx((0.6 * 7 + 0.3 * 8) / 0.9)
    assert weighted["content"] == pytest.approx(6.0)
    assert "detail" not in weighted and "style" not in weighted


def test_weighted_scores_ignore_out_of_scale_candidates() -> None:
    tokens = _tokens('{"overall": ', ("3", [("3", 0.5), ("0", 0.5)]), "}")
    assert weighted_scores(tokens, ("overall",), 1, 9) == {"overall": pytest.approx(3.0)}
    assert weighted_scores([], ("overall",), 1, 9) == {}
