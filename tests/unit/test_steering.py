"""The steering headers: parsed, or refused with a 400 naming the header."""

from __future__ import annotations

import pytest

from gateway.errors import InvalidRequest
from gateway.steering import MAX_COST, MIN_TIER, parse
from router.select import NO_STEERING, Steering


def test_headers_parse_into_steering() -> None:
    assert parse(None) is NO_STEERING and parse({"x-other": "1"}) is NO_STEERING
    assert parse({MIN_TIER: "2"}) == Steering(2, None)
    assert parse({MAX_COST: "0.005", MIN_TIER: "0"}) == Steering(0, 0.005)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (MIN_TIER, "-1"),
        (MIN_TIER, "10"),
        (MIN_TIER, "²"),
        (MIN_TIER, "one"),
        (MAX_COST, "0"),
        (MAX_COST, "nan"),
        (MAX_COST, "inf"),
        (MAX_COST, "$1"),
    ],
)
def test_bad_values_are_refused_naming_the_header(name: str, value: str) -> None:
    with pytest.raises(InvalidRequest) as e:
        parse({name: value})
    assert e.value.param == name and e.value.status == 400
