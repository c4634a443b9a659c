"""Parsed bodies kept for repeated bytes (gateway/body_memo.py), and what makes sharing a parsed request safe: it is
frozen, what leaves it for an upstream is a copy, and its content digest (the cache key's part) is read once."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from gateway.body_memo import BodyMemo
from gateway.protocol import ChatCompletionRequest
from gateway.response_cache import cache_key


class CountingParse:
    def __init__(self) -> None:
        self.calls: list[bytes] = []

    def __call__(self, raw: bytes) -> dict[str, Any]:
        self.calls.append(raw)
        parsed: dict[str, Any] = orjson.loads(raw)
        if "bad" in parsed:
            raise ValueError("refused")
        return parsed


def test_the_same_bytes_are_parsed_once_per_api() -> None:
    memo, parse = BodyMemo(), CountingParse()
    first = memo.parse("chat", b'{"a": 1}', parse)
    assert memo.parse("chat", b'{"a": 1}', parse) is first
    assert memo.parse("chat", b'{"a":1}', parse) == first  # other bytes: parsed again
    memo.parse("responses", b'{"a": 1}', parse)  # another API parses the same bytes its own way
    assert parse.calls == [b'{"a": 1}', b'{"a":1}', b'{"a": 1}']


def test_a_refused_body_is_checked_every_time_and_not_kept() -> None:
    memo, parse = BodyMemo(), CountingParse()
    for _ in range(2):
        with pytest.raises(ValueError, match="refused"):
            memo.parse("chat", b'{"bad": 1}', parse)
    assert len(parse.calls) == 2 and len(memo) == 0


def test_large_bodies_are_not_kept() -> None:
    memo, parse = BodyMemo(max_bytes=16), CountingParse()
    raw = orjson.dumps({"a": "x" * 16})
    memo.parse("chat", raw, parse)
    memo.parse("chat", raw, parse)
    assert len(parse.calls) == 2 and len(memo) == 0


def test_the_least_recently_used_body_goes_first() -> None:
    memo, parse = BodyMemo(max_entries=2), CountingParse()
    a, b, c = b'{"a": 1}', b'{"b": 1}', b'{"c": 1}'
    memo.parse("chat", a, parse)
    memo.parse("chat", b, parse)
    memo.parse("chat", a, parse)  # a used again: b is now the oldest
    memo.parse("chat", c, parse)
    assert len(memo) == 2
    memo.parse("chat", a, parse)
    memo.parse("chat", b, parse)
    assert parse.calls == [a, b, c, b]


BODY = {
    "model": "m",
    "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    "temperature": 0,
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    "vendor_option": {"nested": [1, 2]},
}


def test_a_parsed_request_cannot_be_changed() -> None:
    req = ChatCompletionRequest.model_validate(BODY)
    with pytest.raises(ValidationError, match="frozen"):
        req.temperature = 1.0
    with pytest.raises(ValidationError, match="frozen"):
        req.messages[0].content = "changed"


def test_what_goes_to_an_upstream_is_a_copy() -> None:
    req = ChatCompletionRequest.model_validate(BODY)
    before = req.model_dump()
    extras, params = req.extras(), req.sampling_params()
    messages = [m.model_dump(exclude_none=True) for m in req.messages]
    extras["vendor_option"]["nested"].append(3)  # as an upstream call might, with what it is given
    params["tools"][0]["function"]["name"] = "g"
    messages[0]["content"][0]["text"] = "changed"
    assert req.model_dump() == before
    assert req.extras() == {"vendor_option": {"nested": [1, 2]}}


def test_the_content_digest_reads_what_an_answer_depends_on() -> None:
    digest = ChatCompletionRequest.model_validate(BODY).content_digest
    reordered = dict(reversed(list(BODY.items())))
    same = [
        reordered,
        {**BODY, "model": "other", "stream": True, "stream_options": {"include_usage": True}, "user": "u"},
    ]
    for body in same:
        assert ChatCompletionRequest.model_validate(body).content_digest == digest
    other = [
        {**BODY, "temperature": 0.5},
        {**BODY, "messages": [{"role": "user", "content": "hi"}]},
        {**BODY, "vendor_option": {"nested": [2, 1]}},
        {k: v for k, v in BODY.items() if k != "tools"},
    ]
    for body in other:
        assert ChatCompletionRequest.model_validate(body).content_digest != digest


def test_the_cache_key_holds_the_target_and_the_policy() -> None:
    req = ChatCompletionRequest.model_validate(copy.deepcopy(BODY))
    keys = {cache_key(req, t, fp) for t in ("m", "policy:default") for fp in ("fp1", "fp2")}
    assert len(keys) == 4
    assert cache_key(req, "m", "fp1") == cache_key(ChatCompletionRequest.model_validate(BODY), "m", "fp1")
