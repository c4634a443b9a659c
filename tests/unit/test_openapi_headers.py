"""The patterns /openapi.json gives the chat endpoint's headers: any value a pattern admits is one the gateway
accepts (a client or fuzzer generating values from the schema is never refused for them), and the gateway's own
refusals do not match."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import steering, tags
from gateway.openapi import PATTERNS
from gateway.protocol import ChatCompletionRequest
from gateway.response_cache import TTL_HEADER, decide
from router.policy import CachePolicy

DET = ChatCompletionRequest.model_validate(
    {"model": "auto", "messages": [{"role": "user", "content": "x"}], "temperature": 0}
)


def accepts(header: str, value: str) -> bool:
    if header == tags.HEADER:
        tags.parse(value)
    elif header == TTL_HEADER:
        assert decide(DET, CachePolicy(), {TTL_HEADER: value}).ttl_s == int(value)
    else:
        steering.parse({header: value})
    return True


@pytest.mark.parametrize("header", sorted(PATTERNS))
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_every_value_a_pattern_admits_is_accepted(header: str, data: st.DataObject) -> None:
    value = data.draw(st.from_regex(PATTERNS[header], fullmatch=True))
    assert accepts(header, value)


@pytest.mark.parametrize(
    ("header", "value"),
    [
        (tags.HEADER, "no spaces"),
        (tags.HEADER, "a,b,c,d,e,f,g,h,i"),
        (tags.HEADER, "x" * 65),
        (TTL_HEADER, "0"),
        (TTL_HEADER, "2592001"),
        (steering.MIN_TIER, "10"),
        (steering.MAX_COST, "0"),
        (steering.MAX_COST, "0.0e5"),
        (steering.MAX_COST, "-1"),
        (steering.MAX_COST, "inf"),
    ],
)
def test_values_the_gateway_refuses_do_not_match(header: str, value: str) -> None:
    assert re.fullmatch(PATTERNS[header], value) is None


def test_the_edges_of_the_ttl_range_match() -> None:
    for ok in ("1", "999999", "1000000", "2499999", "2500000", "2589999", "2590000", "2591999", "2592000"):
        assert re.fullmatch(PATTERNS[TTL_HEADER], ok), ok
