"""The judge's prompt and the grade read from its reply (router/judging.py)."""

from __future__ import annotations

import pytest

from router.judging import MAX_CHARS, grade, grading_messages


def test_the_judge_sees_the_instructions_the_last_request_and_the_answer_clipped() -> None:
    request = [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "an earlier answer"},
        {"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}, {"type": "image_url", "image_url": {}}]},
    ]
    system, user = grading_messages(request, "x" * (3 * MAX_CHARS))
    assert "integer from 1 to 10" in system["content"] and system["role"] == "system"
    text = user["content"]
    assert "Answer in French." in text and "What is 2+2?" in text and "first question" not in text
    assert "[...]" in text and len(text) < 2 * MAX_CHARS


@pytest.mark.parametrize(
    ("reply", "score"), [("8", 7 / 9), ("Score: 10", 1.0), ("1", 0.0), (" 5/10", 4 / 9), ("11", None), ("good", None)]
)
def test_the_grade_is_read_as_a_judgement(reply: str, score: float | None) -> None:
    assert grade(reply) == (pytest.approx(score) if score is not None else None)
