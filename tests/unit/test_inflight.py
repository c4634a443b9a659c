"""The worker's count of calls in flight per server: slots, the cap, the first-come-first-served wait."""

from __future__ import annotations

import asyncio

import pytest

from gateway.inflight import Busy, InFlight


def test_slots_count_and_release_once() -> None:
    f = InFlight()
    a, b = f.try_acquire("s"), f.try_acquire("s")
    assert a is not None and b is not None and f.count("s") == 2 and not f.full("s")  # no cap: never full
    a.release()
    a.release()  # idempotent: every exit path may release
    assert f.count("s") == 1
    b.release()
    assert f.count("s") == 0 and f.gauges() == {"s": [0, 0]}  # an idle server reads 0 (its gauge stays)


async def test_past_the_cap_calls_wait_in_turn_and_take_freed_slots() -> None:
    f = InFlight()
    f.configure({"s": 1})
    first = f.try_acquire("s")
    assert first is not None and f.full("s") and f.try_acquire("s") is None
    order: list[str] = []

    async def call(name: str) -> None:
        slot = await f.acquire("s", 5.0)
        order.append(name)
        await asyncio.sleep(0)
        slot.release()

    waiting = [asyncio.create_task(call(n)) for n in ("b", "c")]
    await asyncio.sleep(0.01)
    assert order == [] and f.load()["s"].waiting == 2
    assert f.try_acquire("s") is None  # no jumping the queue, even at the moment a slot frees
    first.release()
    await asyncio.gather(*waiting)
    assert order == ["b", "c"] and f.count("s") == 0 and f.load()["s"].in_flight == 0


async def test_a_wait_that_times_out_raises_busy_and_leaves_no_trace() -> None:
    f = InFlight()
    f.configure({"s": 1})
    held = f.try_acquire("s")
    with pytest.raises(Busy) as e:
        await f.acquire("s", 0.02)
    assert e.value.server == "s" and f.load()["s"].waiting == 0 and f.count("s") == 1
    assert held is not None
    held.release()
    assert f.try_acquire("s") is not None  # the timed-out waiter took nothing


async def test_a_cancelled_waiter_gives_its_place_to_the_next() -> None:
    f = InFlight()
    f.configure({"s": 1})
    held = f.try_acquire("s")
    gone = asyncio.create_task(f.acquire("s", 5.0))
    nxt = asyncio.create_task(f.acquire("s", 5.0))
    await asyncio.sleep(0.01)
    gone.cancel()
    await asyncio.sleep(0)
    assert held is not None
    held.release()
    slot = await asyncio.wait_for(nxt, 1.0)
    assert f.count("s") == 1
    slot.release()
    assert f.count("s") == 0


async def test_a_raised_cap_lets_waiters_in_and_counts_survive_a_new_policy() -> None:
    f = InFlight()
    f.configure({"s": 1})
    held = f.try_acquire("s")
    waiter = asyncio.create_task(f.acquire("s", 5.0))
    await asyncio.sleep(0.01)
    f.configure({"s": 2})  # a reloaded policy file
    slot = await asyncio.wait_for(waiter, 1.0)
    assert f.count("s") == 2 and f.full("s")
    f.configure({})  # cap removed: the calls still count (least-busy reads them)
    assert f.count("s") == 2 and not f.full("s")
    assert held is not None
    held.release()
    slot.release()
