"""gateway/flights.py: one leader per key, followers served copies of its answer, or None when it has none."""

from __future__ import annotations

import asyncio

import pytest

from gateway.flights import Flights


def test_followers_get_their_own_copy_of_the_leaders_answer() -> None:
    async def go() -> None:
        flights = Flights()
        assert await flights.follow("k") is None  # nothing in flight: the caller makes its own call
        leader = flights.lead("k")
        assert leader is not None and flights.lead("k") is None  # one leader a key
        a, b = asyncio.ensure_future(flights.follow("k")), asyncio.ensure_future(flights.follow("k"))
        await asyncio.sleep(0)
        leader.land({"id": "chatcmpl-1", "created": 1, "choices": [{"message": {"content": "x"}}]})
        first, second = await a, await b
        assert first["choices"] == second["choices"] == [{"message": {"content": "x"}}] and first is not second
        assert len({"chatcmpl-1", first["id"], second["id"]}) == 3 and first["created"] > 1  # each answer its own
        assert len(flights) == 0 and flights.lead("k") is not None  # landed: the next call leads again

    asyncio.run(go())


def test_a_leader_without_an_answer_releases_its_followers_empty_handed() -> None:
    async def go() -> None:
        flights = Flights()
        leader = flights.lead("k")
        assert leader is not None
        waiting = asyncio.ensure_future(flights.follow("k"))
        await asyncio.sleep(0)
        leader.land(None)
        leader.land({"late": True})  # a second landing changes nothing
        assert await waiting is None and len(flights) == 0

    asyncio.run(go())


def test_a_follower_that_leaves_does_not_take_the_leaders_call_with_it() -> None:
    async def go() -> None:
        flights = Flights()
        leader = flights.lead("k")
        assert leader is not None
        gone, stays = asyncio.ensure_future(flights.follow("k")), asyncio.ensure_future(flights.follow("k"))
        await asyncio.sleep(0)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        leader.land({"ok": 1})
        assert (await stays)["ok"] == 1

    asyncio.run(go())
