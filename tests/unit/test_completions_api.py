"""The legacy Completions API translation (gateway/completions_api.py): requests to chat, chat answers and streams
back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.completions_api import CompletionRequest, from_chat, stream_chunks, to_chat
from gateway.errors import InvalidRequest


def _req(**kw: Any) -> CompletionRequest:
    return CompletionRequest.model_validate({"model": "auto", "prompt": "hi", **kw})


def test_the_prompt_becomes_one_user_message_and_the_rest_goes_on_as_sent() -> None:
    body = to_chat(_req(prompt=["Once upon"], n=2, stop=["\n"], user="u1", top_k=5, stream=True))
    assert body == {
        "model": "auto",
        "messages": [{"role": "user", "content": "Once upon"}],
        "stream": True,
        "max_tokens": 16,
        "n": 2,
        "stop": ["\n"],
        "user": "u1",
        "top_k": 5,
    }
    assert "max_tokens" not in to_chat(_req(max_tokens=None))  # an explicit null: the model's own default


@pytest.mark.parametrize(
    ("kw", "param"),
    [
        ({"suffix": "x"}, "suffix"),
        ({"echo": True}, "echo"),
        ({"logprobs": 0}, "logprobs"),
        ({"best_of": 2}, "best_of"),
        ({"best_of": 1, "n": 2}, "best_of"),
        ({"prompt": [1, 2]}, "prompt"),
        ({"prompt": ["a", "b"]}, "prompt"),
    ],
)
def test_what_chat_cannot_carry_is_refused_naming_it(kw: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as e:
        to_chat(_req(**kw))
    assert e.value.param == param


def test_what_asks_for_nothing_chat_lacks_passes() -> None:
    for kw in ({"suffix": ""}, {"echo": False}, {"best_of": 2, "n": 2}, {"best_of": 1}, {"best_of": 1, "n": None}):
        to_chat(_req(**kw))


def test_a_chat_answer_becomes_a_text_completion() -> None:
    chat = {
        "id": "chatcmpl-abc",
        "object": "chat.completion",
        "created": 7,
        "model": "m",
        "system_fingerprint": "fp",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"},
            {"index": 1, "message": {"role": "assistant", "content": None}, "finish_reason": "length"},
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    }
    assert from_chat(_req(), chat) == {
        "id": "cmpl-abc",
        "object": "text_completion",
        "created": 7,
        "model": "m",
        "system_fingerprint": "fp",
        "choices": [
            {"text": "Hello", "index": 0, "logprobs": None, "finish_reason": "stop"},
            {"text": "", "index": 1, "logprobs": None, "finish_reason": "length"},
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    }


def test_a_chat_stream_becomes_text_completion_chunks() -> None:
    head = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    usage = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    error = {"error": {"message": "upstream failed", "type": "server_error", "param": None, "code": None}}
    chunks = [
        {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
        {**head, "choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]},
        {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {**head, "choices": [], "usage": usage},
        error,
    ]

    async def source() -> AsyncIterator[dict[str, Any]]:
        for c in chunks:
            yield c

    async def collect() -> list[dict[str, Any]]:
        return [c async for c in stream_chunks(source())]

    out = asyncio.run(collect())
    assert [c.get("choices") for c in out] == [
        [{"text": "Hel", "index": 0, "logprobs": None, "finish_reason": None}],
        [{"text": "", "index": 0, "logprobs": None, "finish_reason": "stop"}],
        [],
        None,
    ]
    assert all(c["object"] == "text_completion" and c["id"] == "cmpl-s" for c in out[:3])
    assert out[2]["usage"] == usage and out[3] == error
