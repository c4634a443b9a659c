"""gateway/disconnect.py's Watch with a fake ASGI `receive`: the client leaving cancels armed work only, and only
the client's leaving is turned into ClientDisconnect."""

from __future__ import annotations

import asyncio

import pytest
from starlette.requests import ClientDisconnect
from starlette.types import Message

from gateway.disconnect import Watch


class Client:
    """`receive` after the body: pending until the client leaves."""

    def __init__(self) -> None:
        self.left = asyncio.Event()
        self.calls = 0

    async def receive(self) -> Message:
        self.calls += 1
        await self.left.wait()
        return {"type": "http.disconnect"}


async def _upstream_call(watch: Watch, arm: bool, seen: list[str], started: asyncio.Event) -> str:
    if arm:
        watch.arm()
    started.set()
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        seen.append("cancelled")
        raise
    return "answer"


async def test_armed_work_is_cancelled_when_the_client_leaves() -> None:
    client, seen, started = Client(), [], asyncio.Event()
    watch = Watch(client.receive)
    run = asyncio.ensure_future(watch.run(_upstream_call(watch, True, seen, started)))
    await started.wait()
    client.left.set()
    with pytest.raises(ClientDisconnect):
        await run
    assert seen == ["cancelled"] and watch.gone


async def test_unarmed_work_is_not_watched() -> None:
    """A cache hit never arms: no pending receive, nothing to cancel."""
    client = Client()
    watch = Watch(client.receive)

    async def quick() -> str:
        return "hit"

    assert await watch.run(quick()) == "hit"
    assert client.calls == 0 and not watch.gone


async def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    client, seen, started = Client(), [], asyncio.Event()
    watch = Watch(client.receive)
    run = asyncio.ensure_future(watch.run(_upstream_call(watch, True, seen, started)))
    await started.wait()
    run.cancel()  # the server stopping
    with pytest.raises(asyncio.CancelledError):
        await run
    assert seen == ["cancelled"] and not watch.gone


async def test_leaving_after_the_work_ended_cancels_nothing() -> None:
    client = Client()
    watch = Watch(client.receive)

    async def answered() -> str:
        watch.arm()
        await asyncio.sleep(0)
        return "answer"

    assert await watch.run(answered()) == "answer"
    client.left.set()  # the watch was cancelled with the work's end: this reaches no one
    await asyncio.sleep(0.01)
    assert not watch.gone
