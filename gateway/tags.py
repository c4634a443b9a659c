"""Tags a request carries for cost attribution (`x-tiergate-tags: team-search,feature-summary`), as LiteLLM's and
Portkey's request tags: spend per team, feature or environment, below the API key and beside the end user.

At most 8 tags a request, each 1-64 characters of letters, digits and `_ . : / = -`. The ledger keeps them as one
text column, comma-separated with a comma at each end (`,a,b,`), so one tag is found with a LIKE on either backend.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from gateway.errors import InvalidRequest

HEADER = "x-tiergate-tags"
MAX_TAGS = 8
TAG = r"[A-Za-z0-9_.:/=-]{1,64}"  # also the pattern /openapi.json gives the header (gateway/openapi.py)
_TAG = re.compile(TAG)


def _as_sent(text: str) -> str:
    """A header's text as the client wrote it: headers reach the app as bytes, read as Latin-1, and clients send
    UTF-8, so "tëam" was quoted back as "tÃ«am"."""
    try:
        return text.encode("latin-1").decode("utf-8")
    except UnicodeError:  # not UTF-8 after all (or not Latin-1-encodable): quote it as read
        return text


def parse(value: str | None) -> tuple[str, ...]:
    """The tags of a header value, in order, each once; InvalidRequest (a 400 naming the header) if malformed."""
    if value is None or not value.strip():
        return ()
    tags = tuple(dict.fromkeys(t.strip() for t in value.split(",") if t.strip()))
    bad = next((t for t in tags if _TAG.fullmatch(t) is None), None)
    if bad is not None:
        why = f"'{HEADER}': the tag {_as_sent(bad)[:80]!r} must be 1 to 64 letters, digits or _ . : / = -"
        raise InvalidRequest(why, HEADER, "invalid_value")
    if len(tags) > MAX_TAGS:
        raise InvalidRequest(f"'{HEADER}': at most {MAX_TAGS} tags, got {len(tags)}.", HEADER, "invalid_value")
    return tags


def column(headers: Mapping[str, str]) -> str | None:
    """The ledger's form of a request's tags (None without any). A request with malformed tags was refused before
    this (its own record carries none)."""
    raw = headers.get(HEADER)
    if raw is None:
        return None
    try:
        tags = parse(raw)
    except InvalidRequest:
        return None
    return "," + ",".join(tags) + "," if tags else None


def like(tag: str) -> str:
    """A LIKE pattern (with ESCAPE '\\') for records carrying `tag`."""
    return "%," + tag.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + ",%"
