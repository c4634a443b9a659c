"""gateway/relay.py: how a relayed stream ends, and when its record is written."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.inflight import InFlight, Slot
from gateway.protocol import ChatCompletionRequest
from gateway.provider import UpstreamError
from gateway.relay import relay_stream
from gateway.trace import Trace
from router.policy import ModelSpec

REQ = ChatCompletionRequest.model_validate({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
FIRST = {"choices": [{"index": 0, "delta": {"content": "echo:"}}]}


def _traced() -> tuple[Trace, Slot]:
    trace = Trace("r1", "m", stream=True)
    trace.routed = ModelSpec.model_validate({"name": "m", "litellm_model": "openai/m", "tier": 0})
    slot = InFlight().try_acquire("server")
    assert slot is not None
    return trace, slot


async def _endless() -> AsyncIterator[dict[str, Any]]:
    while True:  # an upstream still talking
        await asyncio.sleep(3600)
        yield {}


async def test_a_broken_streams_record_is_queued_before_the_client_sees_its_error_event() -> None:
    """A client that has seen how its stream ended may read the ledger at once: a fresh-clone CI run once found no
    record there, because the error event went out before the relay's `finally` queued it."""
    trace, slot = _traced()
    req = REQ
    recorded: list[Trace] = []

    async def rest() -> AsyncIterator[dict[str, Any]]:
        raise UpstreamError("m", 502, "the connection broke", True)
        yield {}  # a generator

    first = dict(FIRST)
    events = []
    async for event in relay_stream(trace, req, first, rest(), slot, recorded.append, lambda *_: None):
        events.append(event)
        if "error" in event:
            assert recorded == [trace]  # queued before the client has the error, not when the stream is closed
    assert "error" in events[-1] and trace.status == 502
    assert recorded == [trace]  # once


async def test_a_stream_cut_by_cancelling_its_request_is_the_servers_503() -> None:
    """uvicorn past TIERGATE_SHUTDOWN_GRACE_S cancels the request's own task, in which the relay started."""
    trace, slot = _traced()
    recorded: list[Trace] = []
    started = asyncio.Event()

    async def request() -> None:
        async for _ in relay_stream(trace, REQ, dict(FIRST), _endless(), slot, recorded.append, lambda *_: None):
            started.set()

    task = asyncio.create_task(request())
    await started.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert recorded == [trace] and (trace.status, trace.error_type) == (503, "server_stopping")


@pytest.mark.parametrize("pending_cancel", [False, True])
async def test_a_stream_closed_without_its_request_being_cancelled_is_the_clients_499(pending_cancel: bool) -> None:
    """A client that leaves mid-stream: the stream is closed, not the request's task cancelled; and a stream dropped
    unread is closed after its request's task has ended, whatever was pending on that task."""
    trace, slot = _traced()
    recorded: list[Trace] = []
    relay = relay_stream(trace, REQ, dict(FIRST), _endless(), slot, recorded.append, lambda *_: None)

    async def request() -> None:
        await anext(relay)  # the head, taken in the request's task as the pipeline does
        if pending_cancel:
            cur = asyncio.current_task()
            assert cur is not None
            cur.cancel()  # the disconnect watch's, left pending as the work ended (gateway/disconnect.py)

    task = asyncio.create_task(request())
    await asyncio.gather(task, return_exceptions=True)
    await relay.aclose()
    assert recorded == [trace] and (trace.status, trace.error_type) == (499, "client_closed")
