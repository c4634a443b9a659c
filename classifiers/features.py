"""What the classifier reads from a request: the text to embed and a few cheap scalar features."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from classifiers.base import Matrix

# MiniLM truncates at 256 word pieces; keeping the last ~1,500 characters keeps the question, which in long
# prompts (few-shot, pasted context) tends to come at the end.
MAX_CHARS = 1500
_CODE = re.compile(r"```|\bdef |\bclass |\breturn\b|[{};]\s*$|#include|\bfunction\b|=>", re.M)
_MATH = re.compile(r"\\frac|\\sum|\\int|\$[^$]+\$|\d+\s*[-+*/^=]\s*\d+|\bprove\b|\bsolve\b", re.I)

SCALAR_NAMES = ("log_chars", "n_turns", "code", "math")
# A later user turn shorter than this is scored with the turns before it (scoring_text).
FOLLOW_UP_CHARS = 40


def content_text(content: Any) -> str:
    """The text of an OpenAI message `content`: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping) and p.get("type") == "text")
    return ""


def prompt_from_messages(messages: Sequence[Mapping[str, Any]]) -> tuple[str, int]:
    """The text to classify (the last user turn) and the number of user turns."""
    user = [content_text(m.get("content")) for m in messages if m.get("role") == "user"]
    if not user:
        user = [content_text(m.get("content")) for m in messages]
    return (user[-1] if user else ""), max(1, len(user))


def scoring_text(messages: Sequence[Mapping[str, Any]], last: str, turns: int) -> str:
    """The text to score: the last user turn (`last`, of `turns`, from `prompt_from_messages`), or, when that is a
    short reply later in a conversation (under FOLLOW_UP_CHARS: "ok", "go on", "and the second part?"), every user
    turn joined, oldest first. Such a reply carries the work before it, and alone it scores as what it says, which
    is almost nothing: on conversations made of a benchmark prompt and such a reply, the reply alone ranked the
    prompts at chance (docs/benchmarks.md, "Short replies later in a conversation")."""
    if turns < 2 or len(last.strip()) >= FOLLOW_UP_CHARS:
        return last
    return "\n".join(content_text(m.get("content")) for m in messages if m.get("role") == "user")


def scored_prompt(messages: Sequence[Mapping[str, Any]]) -> tuple[str, int]:
    """The text the gateway scores for these messages (scoring_text), and the number of user turns."""
    last, turns = prompt_from_messages(messages)
    return scoring_text(messages, last, turns), turns


def clip(text: str) -> str:
    return text if len(text) <= MAX_CHARS else text[-MAX_CHARS:]


def scalars(texts: Sequence[str], turns: Sequence[int]) -> Matrix:
    """Length, turns and code/maths markers; scaled to roughly unit range so one weight vector fits them all."""
    rows = [
        (
            math.log1p(len(t)) / 8.0,
            math.log(max(1, n)) / 2.0,
            1.0 if _CODE.search(t) else 0.0,
            1.0 if _MATH.search(t) else 0.0,
        )
        for t, n in zip(texts, turns, strict=True)
    ]
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), len(SCALAR_NAMES))
