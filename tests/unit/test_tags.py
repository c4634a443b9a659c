"""Request tags (x-tiergate-tags): what is a tag, how many, and how the ledger finds one."""

from __future__ import annotations

import pytest

from gateway import tags
from gateway.errors import InvalidRequest


def test_tags_are_split_trimmed_and_kept_once_in_order() -> None:
    assert tags.parse("team-a, feature_x ,team-a,,env=prod") == ("team-a", "feature_x", "env=prod")
    assert tags.parse(None) == () and tags.parse(" , ") == ()
    assert tags.column({"x-tiergate-tags": "b,a"}) == ",b,a,"
    assert tags.column({}) is None and tags.column({"x-tiergate-tags": "bad tag"}) is None


@pytest.mark.parametrize("value", ["has space", "a;b", "x" * 65, "ünï", ",".join(f"t{i}" for i in range(9))])
def test_malformed_tags_are_a_400_naming_the_header(value: str) -> None:
    with pytest.raises(InvalidRequest) as e:
        tags.parse(value)
    assert e.value.status == 400 and e.value.param == "x-tiergate-tags"


def test_a_like_pattern_matches_the_tag_and_not_what_its_underscore_would() -> None:
    assert tags.like("team_a") == "%,team\\_a,%"
