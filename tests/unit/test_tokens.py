"""The token estimate from text alone (router/tokens.py): its rates per kind of character, and what the router sees."""

from __future__ import annotations

import pytest

from gateway.protocol import ChatCompletionRequest
from router.tokens import estimate_tokens


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", 0.0),
        ("word " * 20, 25.0),  # ASCII: 4 characters a token
        ("д" * 100, 75.0),  # Cyrillic, two UTF-8 bytes: 3/4
        ("é" * 8 + "abcd" * 2, 8.0),  # accented Latin beside ASCII
        ("中" * 100, 100.0),  # CJK, three bytes: 1
        ("한국어" * 10, 30.0),  # Hangul
        ("🙂" * 4, 5.0),  # four bytes: 1 1/4
        ("\ud800x", 1.25),  # a lone surrogate (JSON allows one) is counted, not an encoding error
    ],
)
def test_rates_by_kind_of_character(text: str, tokens: float) -> None:
    assert estimate_tokens(text) == pytest.approx(tokens)


def test_a_long_cjk_prompt_no_longer_looks_short_to_the_router() -> None:
    """3,000 characters of Chinese are ~1,800 tokens to GPT-4's tokenizer and ~2,750 to the local SmolLM2's
    (docs/benchmarks.md); at 4 characters a token the router saw 750 and sent such a prompt to a 2,048-token model."""
    cjk = ChatCompletionRequest.model_validate({"model": "m", "messages": [{"role": "user", "content": "中" * 3000}]})
    english = ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "a" * 3000}]}
    )
    assert cjk.needs().context_tokens == 3000 + 4
    assert english.needs().context_tokens == 750 + 4
