"""A cached answer replayed as a stream, and a stream assembled for the cache, keep everything the answer said."""

from __future__ import annotations

from typing import Any

from gateway.response_cache import assemble, replay


async def _chunks(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [c async for c in replay(body, include_usage=True)]


def _body(message: dict[str, Any], finish: str = "stop", **choice: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-x",
        "created": 1,
        "model": "m",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "finish_reason": finish, **choice}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


async def test_a_refusal_goes_round_trip() -> None:
    body = _body({"role": "assistant", "content": None, "refusal": "I can't help with that."})
    chunks = await _chunks(body)
    assert [c["choices"][0]["delta"].get("refusal") for c in chunks if c["choices"]].count(
        "I can't help with that."
    ) == 1
    again = assemble(chunks)
    assert again is not None and again["choices"][0]["message"]["refusal"] == "I can't help with that."
    assert again["usage"] == body["usage"]


async def test_text_logprobs_and_finish_go_round_trip() -> None:
    lp = {"content": [{"token": "hi", "logprob": -0.1, "bytes": None, "top_logprobs": []}]}
    body = _body({"role": "assistant", "content": "hi"}, finish="length", logprobs=lp)
    again = assemble(await _chunks(body))
    assert again is not None
    (choice,) = again["choices"]
    assert (choice["message"], choice["finish_reason"], choice["logprobs"]) == (
        {"role": "assistant", "content": "hi"},
        "length",
        lp,
    )
