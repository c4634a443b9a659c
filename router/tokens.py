"""A text's token count estimated from its characters alone, for what is decided before a model counts them: whether
a prompt fits a model's window, and the cost estimates behind spend caps and unreported usage.

Tokenizers differ by model, so these rates are a compromise, measured on real translated text in nine languages and
on code against GPT-4's tokenizer (cl100k), DeepSeek's and the local SmolLM2's (`bench/tokens.py`, docs/benchmarks.md):

- ASCII (English, code): ~4 characters a token;
- other characters of two UTF-8 bytes (accented Latin, Greek, Cyrillic, Hebrew, Arabic): ~3/4 token each;
- wider ones (CJK, kana, Hangul, Indic scripts; emoji count double): ~1 token each.

The flat 4 characters a token used before undercounted Chinese, Japanese, Korean, Arabic and Hindi 2.5-3.8x against
cl100k and 3.7-5.9x against SmolLM2, so long such prompts went to a model whose window they overflowed. These rates
read 0.85-1.50 of cl100k's count on every language measured, 0.88-1.93 of DeepSeek's, and still 0.40-0.85 of
SmolLM2's on non-Latin text (its vocabulary is mostly English): a prompt that overflows the local model anyway is
refused there in one quick call and goes up the chain (gateway/calls.py).
"""

from __future__ import annotations

_ASCII_PER_TOKEN = 4
_TWO_BYTE_TOKENS = 0.75
_WIDE_EXTRA = 0.25  # on top of _TWO_BYTE_TOKENS per UTF-8 byte past the second: 1.0 for 3 bytes, 1.25 for 4


def estimate_tokens(text: str) -> float:
    """Estimated tokens in `text` (see the module's rates)."""
    n = len(text)
    if text.isascii():  # most traffic: one pass in C
        return n / _ASCII_PER_TOKEN
    ascii_n = len(text.encode("ascii", "ignore"))
    # Past its first two, each byte of a character is one of a wide character's: bytes + ascii - 2 * chars counts them.
    wide = len(text.encode("utf-8", "surrogatepass")) + ascii_n - 2 * n
    return ascii_n / _ASCII_PER_TOKEN + _TWO_BYTE_TOKENS * (n - ascii_n) + _WIDE_EXTRA * wide
