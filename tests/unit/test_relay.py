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


def _llama_usage(completion: int) -> dict[str, Any]:
    """A usage chunk as llama.cpp's server streams one per answer when `n` > 1 (its `timings` give it away)."""
    usage = {"prompt_tokens": 35, "completion_tokens": completion, "total_tokens": 35 + completion}
    return {"choices": [], "usage": usage, "timings": {"predicted_n": completion}}


@pytest.mark.parametrize("include_usage", [True, False])
async def test_llama_cpps_usage_chunk_per_answer_reaches_the_client_as_one_last_chunk_for_all(
    include_usage: bool,
) -> None:
    """llama.cpp sends answer 1's usage in the middle of answer 0's content; OpenAI sends one usage chunk, last, with
    every answer's tokens. A client that stops at the usage chunk, or reads the last one, must see them all."""
    trace, slot = _traced()
    req = ChatCompletionRequest.model_validate(
        {
            **REQ.model_dump(exclude_none=True),
            "n": 2,
            "stream_options": {"include_usage": include_usage},
            "stream": True,
        }
    )

    async def rest() -> AsyncIterator[dict[str, Any]]:
        yield {"choices": [{"index": 1, "delta": {"content": "b"}, "finish_reason": "length"}]}
        yield _llama_usage(6)
        yield {"choices": [{"index": 0, "delta": {"content": "a"}}]}
        yield {"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}
        yield _llama_usage(5)

    out = [c async for c in relay_stream(trace, req, dict(FIRST), rest(), slot, lambda _: None, lambda *_: None)]
    usages = [(i, c["usage"]) for i, c in enumerate(out) if "usage" in c]
    assert usages == (
        [(len(out) - 1, {"prompt_tokens": 35, "completion_tokens": 11, "total_tokens": 46})] if include_usage else []
    )
    assert [c["choices"][0]["index"] for c in out if c.get("choices")] == [0, 1, 0, 0]  # content in its order
    assert (trace.usage.prompt_tokens, trace.usage.completion_tokens, trace.usage_estimated) == (35, 11, False)
