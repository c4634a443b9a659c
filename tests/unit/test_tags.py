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


def test_a_refused_tag_is_quoted_as_the_client_wrote_it() -> None:
    """Headers arrive as bytes and are read as Latin-1; a client's UTF-8 "tëam" was quoted back as "tÃ«am"."""
    as_read = "tëam".encode().decode("latin-1")
    with pytest.raises(InvalidRequest) as e:
        tags.parse(as_read)
    assert "'tëam'" in e.value.message
    with pytest.raises(InvalidRequest) as e:
        tags.parse("caf\xe9")  # a Latin-1 byte that is not UTF-8: quoted as read
    assert "'café'" in e.value.message
