"""The judge's side of LLM-as-judge grading (router/policy.py: Judge), without I/O: the messages that ask a strong
model to grade an answer, and the grade read back from its reply as a judgement in [0, 1]."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from classifiers.features import content_text

MAX_CHARS = 6000  # of the request and of the answer each: enough to judge, bounded in cost
_INSTRUCTIONS = (
    "You grade an AI assistant's answer to a user's request. Judge whether it does what the request asks: correct, "
    "complete enough, following the request's instructions and format. Reply with a single integer from 1 to 10, "
    "where 1 is useless or wrong and 10 is as good as the best assistant could do, and nothing else."
)
_GRADE = re.compile(r"\b(10|[1-9])\b")


def _clip(text: str) -> str:
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS // 2] + "\n[...]\n" + text[-MAX_CHARS // 2 :]


def grading_messages(request: Sequence[Mapping[str, Any]], answer: str) -> list[dict[str, str]]:
    """The judge's conversation: instructions, then the request (its system prompt and last user turn) and the
    answer, each clipped."""
    system = next((content_text(m.get("content")) for m in request if m.get("role") in ("system", "developer")), "")
    user = next((content_text(m.get("content")) for m in reversed(request) if m.get("role") == "user"), "")
    asked = (f"[instructions the assistant was given]\n{_clip(system)}\n\n" if system else "") + _clip(user)
    return [
        {"role": "system", "content": _INSTRUCTIONS},
        {"role": "user", "content": f"<request>\n{asked}\n</request>\n\n<answer>\n{_clip(answer)}\n</answer>"},
    ]


def grade(reply: str) -> float | None:
    """The judgement in [0, 1] (1-10 mapped linearly) from the judge's reply; None when it holds no grade."""
    m = _GRADE.search(reply)
    return None if m is None else (int(m.group(1)) - 1) / 9
