"""gateway/relay.py: how a relayed stream ends, and when its record is written."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from gateway.inflight import InFlight
from gateway.protocol import ChatCompletionRequest
from gateway.provider import UpstreamError
from gateway.relay import relay_stream
from gateway.trace import Trace
from router.policy import ModelSpec


async def test_a_broken_streams_record_is_queued_before_the_client_sees_its_error_event() -> None:
    """A client that has seen how its stream ended may read the ledger at once: a fresh-clone CI run once found no
    record there, because the error event went out before the relay's `finally` queued it."""
    spec = ModelSpec.model_validate({"name": "m", "litellm_model": "openai/m", "tier": 0})
    trace = Trace("r1", "m", stream=True)
    trace.routed = spec
    req = ChatCompletionRequest.model_validate({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    slot = InFlight().try_acquire("server")
    assert slot is not None
    recorded: list[Trace] = []

    async def rest() -> AsyncIterator[dict[str, Any]]:
        raise UpstreamError("m", 502, "the connection broke", True)
        yield {}  # a generator

    first = {"choices": [{"index": 0, "delta": {"content": "echo:"}}]}
    events = []
    async for event in relay_stream(trace, req, first, rest(), slot, recorded.append, lambda *_: None):
        events.append(event)
        if "error" in event:
            assert recorded == [trace]  # queued before the client has the error, not when the stream is closed
    assert "error" in events[-1] and trace.status == 502
    assert recorded == [trace]  # once
