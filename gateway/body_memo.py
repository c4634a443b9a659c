"""Parsed request bodies kept for when the same bytes come again: a repeated body, which is what a cache hit is,
skips pydantic's validation and the gateway's request rules.

In process (bench.inproc, an Intel Xeon), a cache hit's own work was ~72 us, of which parsing and checking the body
took ~10 us and the cache key's canonical form another ~10 (that digest is kept on the parsed request:
ChatCompletionRequest.content_digest). Only bodies that parsed are kept (a refused body is checked, and refused, in
full every time), only small ones (`max_bytes`), and only the latest `max_entries`. What a kept parse weighs is not
its size in bytes: a 4 KiB body of 1,300 empty objects parses to ~95 KB of Python objects, and 128 of those took
11.9 MB (8 KiB and 256 such bodies took 48.5 MB); chat turns take less (125 short messages: 9.4 MB for 128).

A kept request serves every later request with the same bytes, concurrently too, so nothing may change it: the
request models are frozen (gateway/protocol.py), and what goes to an upstream is a copy (model_dump, extras()).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar, cast

T = TypeVar("T")

MAX_ENTRIES = 128
MAX_BYTES = 4 << 10  # a chat turn or a few: what apps repeat; a long document is parsed each time


class BodyMemo:
    """The latest parsed bodies (of every API together), least recently used out first."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._kept: OrderedDict[tuple[str, bytes], object] = OrderedDict()

    def parse(self, api: str, raw: bytes, parse: Callable[[bytes], T]) -> T:
        """`parse(raw)`, or what it returned for the same API and bytes before; its exceptions pass through and
        nothing is kept of them. `parse` must be a pure function of the bytes, the same for every call on `api`."""
        if len(raw) > self.max_bytes:
            return parse(raw)
        key = (api, raw)
        kept = self._kept.get(key)
        if kept is not None:
            self._kept.move_to_end(key)
            return cast(T, kept)  # stored below, by the same `parse` (one per API)
        result = parse(raw)
        self._kept[key] = result
        if len(self._kept) > self.max_entries:
            self._kept.popitem(last=False)
        return result

    def __len__(self) -> int:
        return len(self._kept)
