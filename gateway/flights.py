"""Identical cacheable calls in flight at once, in one worker: the first goes to the model, the others wait for its
answer and are served it as a cache hit (a "single flight").

Without it, N clients sending the same deterministic request at the same moment all missed the cache (the first
answer was not stored yet) and paid for N upstream calls of one answer. A follower waits only for a leader that is
still running; if the leader ends without an answer (an error, its client gone, the server stopping), each follower
makes its own call, as it would have without waiting. The key is the response cache's, so only what the cache would
serve is shared. Per worker: workers do not see each other's calls.
"""

from __future__ import annotations

import asyncio
import os
import random
from typing import Any

import orjson

from gateway.response_cache import decode

Answer = dict[str, Any]


class _Open:
    __slots__ = ("done", "followers")

    def __init__(self) -> None:
        self.done: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self.followers = 0


class Flight:
    """A leader's call: `land` it with its answer, or with None when it has none, exactly once (a `finally`)."""

    def __init__(self, flights: Flights, key: str, entry: _Open) -> None:
        self._flights, self._key, self._entry = flights, key, entry

    def land(self, answer: Answer | None) -> None:
        entry = self._entry
        self._flights.close(self._key, entry)  # from here on, an identical request is a call of its own
        if entry.done.done():
            return
        # Encoded only for followers, and once: each decodes its own copy (with its own id and time, as a cache hit
        # has), so no two answers share a dict that a later step (a translation to another API) could change. A call
        # nobody followed pays nothing here.
        entry.done.set_result(orjson.dumps(answer) if answer is not None and entry.followers else None)


class Flights:
    def __init__(self) -> None:
        self._open: dict[str, _Open] = {}
        self._ids = random.Random(os.urandom(16))  # each follower's answer gets its own id, as a cache hit does

    def __len__(self) -> int:
        return len(self._open)

    def __contains__(self, key: object) -> bool:
        return key in self._open

    def close(self, key: str, entry: _Open) -> None:
        if self._open.get(key) is entry:
            del self._open[key]

    def lead(self, key: str) -> Flight | None:
        """The caller's flight if no call for `key` is in flight; None if one is (then `follow` it)."""
        if key in self._open:
            return None
        entry = self._open[key] = _Open()
        return Flight(self, key, entry)

    async def follow(self, key: str) -> Answer | None:
        """The answer of the call in flight for `key`, once it has one; None if none is in flight or it ended
        without an answer. A follower's cancellation (its client leaving) does not touch the leader's call."""
        entry = self._open.get(key)
        if entry is None:
            return None
        entry.followers += 1
        encoded = await asyncio.shield(entry.done)
        return None if encoded is None else decode(encoded, self._ids)
