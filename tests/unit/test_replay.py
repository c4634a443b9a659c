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


def _piece(i: int, **call: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": i, **call}]}, "finish_reason": None}]}


async def test_streamed_tool_calls_are_assembled_by_index_and_replayed() -> None:
    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": None}}]},
        _piece(0, id="call_a", type="function", function={"name": "search", "arguments": ""}),
        _piece(0, function={"arguments": '{"q": '}),
        _piece(1, id="call_b", type="function", function={"name": "fetch", "arguments": '{"u"'}),
        _piece(0, function={"arguments": '"cats"}'}),
        _piece(1, function={"arguments": ': "x"}'}),
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14}},
    ]
    body = assemble(chunks)
    assert body is not None
    (choice,) = body["choices"]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {"id": "call_a", "type": "function", "function": {"name": "search", "arguments": '{"q": "cats"}'}},
        {"id": "call_b", "type": "function", "function": {"name": "fetch", "arguments": '{"u": "x"}'}},
    ]
    again = assemble(await _chunks({**body, "id": "chatcmpl-y", "created": 2, "model": "m"}))
    assert again is not None and again["choices"] == body["choices"] and again["usage"] == body["usage"]


def test_a_call_without_its_id_or_name_is_not_kept() -> None:
    end = {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}
    assert assemble([_piece(0, function={"name": "f", "arguments": "{}"}), end]) is None
    assert assemble([_piece(0, id="c", function={"arguments": "{}"}), end]) is None
