"""The chat request's bounds on integers: what orjson can write passes, anything past it is refused naming where."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from gateway.errors import from_validation
from gateway.protocol import ChatCompletionRequest

USER = [{"role": "user", "content": "x"}]


@pytest.mark.parametrize("n", [-(2**63), 2**64 - 1, True, 1.0e300])
def test_numbers_orjson_writes_pass(n: Any) -> None:
    req = ChatCompletionRequest.model_validate({"model": "m", "messages": USER, "top_k": n, "x": [{"y": n}]})
    assert req.extras() == {"top_k": n, "x": [{"y": n}]}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"top_k": 2**64}, "top_k"),
        ({"x": [{"y": -(2**63) - 1}]}, "x.0.y"),
        (
            {"messages": [*USER, {"role": "assistant", "content": None, "tool_calls": [{"index": 2**70}]}]},
            "messages.1.tool_calls.0.index",
        ),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"schema": {"maxItems": 2**65}}}},
            "response_format.json_schema.schema.maxItems",
        ),
        ({"tool_choice": {"type": "function", "n": 2**65}}, "tool_choice.n"),
        ({"max_completion_tokens": 2**64}, "max_completion_tokens"),
    ],
)
def test_an_integer_past_64_bits_is_refused_naming_it(body: dict[str, Any], param: str) -> None:
    with pytest.raises(ValidationError) as e:
        ChatCompletionRequest.model_validate({"model": "m", "messages": USER, **body})
    err = from_validation([dict(x) for x in e.value.errors()])
    assert (err.status, err.param, err.code) == (400, param, "invalid_value")


@pytest.mark.parametrize(
    ("body", "param", "says"),
    [
        ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content", "expected a string or an array"),
        ({"messages": [{"role": "user", "content": [5]}]}, "messages.0.content.0", "valid dictionary"),
        ({"stop": ["a", 5]}, "stop.1", "valid string"),
        ({"tool_choice": 5}, "tool_choice", "expected a string or an object"),
        ({"logit_bias": {"str": "x"}}, "logit_bias.str", "valid number"),  # a key that looks like a union's member
    ],
)
def test_a_union_that_fails_is_named_as_the_client_wrote_it(body: dict[str, Any], param: str, says: str) -> None:
    """Not pydantic's `content.str`: the field, and either what it may be or the error inside the shape it has."""
    with pytest.raises(ValidationError) as e:
        ChatCompletionRequest.model_validate({"model": "m", "messages": USER, **body})
    err = from_validation([dict(x) for x in e.value.errors()])
    assert err.param == param and says in err.message
