"""A stream's relay from the upstream to the client: the chunks renamed to the model that answers, usage kept for the
record (and passed on only when asked), a cut or broken stream ended with an error event, and, however it ends, the
server's slot freed and the request's one record written."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

from gateway.errors import UpstreamFailed
from gateway.inflight import Slot
from gateway.protocol import ChatCompletionRequest
from gateway.provider import UpstreamError
from gateway.response_cache import assemble
from gateway.trace import Trace
from gateway.usage import content_tokens, counts_one_choice, estimate_usage, restated, usage_of
from router.pricing import Usage


async def relay_stream(
    trace: Trace,
    req: ChatCompletionRequest,
    first: dict[str, Any],
    rest: AsyncIterator[dict[str, Any]],
    slot: Slot,
    record: Callable[[Trace], None],
    failed: Callable[[UpstreamError, str, bool], None],
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> AsyncGenerator[dict[str, Any]]:
    """Yield the upstream's chunks renamed to our model; an error dict ends a broken stream.

    Usage is always asked of the upstream (the ledger needs it) but only passed on when the client asked. A
    stream that ends without it (cut short by the client or the upstream, or a server that never sends it)
    is recorded with estimated usage: what was generated until then is billed all the same.
    """
    assert trace.routed is not None
    # The pipeline takes the first chunk in the request's own task; what cuts the stream later tells itself apart by
    # it: uvicorn at shutdown cancels that task, a client leaving does not (below).
    request_task = asyncio.current_task()
    include_usage = req.wants_usage_chunk()
    seen: list[dict[str, Any]] = []
    got_usage = finished = one_choice_each = False
    held: dict[str, Any] | None = None  # a usage chunk that counts one answer of several: sent at the end, restated
    pieces, tokens = 0, 0.0  # generated deltas and their estimated tokens, for the estimate
    ending: dict[str, Any] | None = None  # the error event of a broken stream, sent once its record is queued
    try:
        chunk: dict[str, Any] | None = first
        while chunk is not None:
            if on_done is not None:
                seen.append(dict(chunk))  # below we only set "model" and drop "usage" at the top level
            if (u := usage_of(chunk)) is not None:
                if counts_one_choice(chunk):
                    # llama.cpp's server streams one usage chunk per choice when `n` > 1: they add up.
                    if one_choice_each:
                        u = Usage(u.prompt_tokens, trace.usage.completion_tokens + u.completion_tokens, u.cached_tokens)
                    one_choice_each = True
                    if include_usage and not chunk.get("choices"):
                        # It sends one in the middle of the others' content, too; OpenAI sends one, last, for all.
                        held = chunk
                trace.usage, got_usage = u, True
                if not include_usage:
                    chunk.pop("usage")
            if choices := [c for c in chunk.get("choices") or () if isinstance(c, dict)]:
                finished = finished or any(c.get("finish_reason") for c in choices)
                if not got_usage:
                    n = content_tokens(c.get("delta") for c in choices)
                    pieces, tokens = pieces + (n > 0), tokens + n
            chunk["model"] = trace.routed.name
            if chunk is not held and (include_usage or chunk.get("choices")):
                yield chunk
            chunk = await anext(rest, None)
        if not finished:
            # Every OpenAI-compatible server ends an answer with a finish_reason. A stream that stops before one
            # was cut (the upstream died, or closed a close-delimited body early); relayed as it is, the
            # client would take half an answer for a whole one.
            raise UpstreamError(trace.routed.name, 502, "the stream ended before the answer did", False)
        if on_done is not None and (body := assemble(seen)) is not None:
            on_done(body)
        if held is not None:
            yield held | {"usage": restated(held["usage"], trace.usage)}
    except UpstreamError as e:
        failed(e, trace.server, trace.unchecked)
        err = trace.fail(UpstreamFailed(f"The upstream model {e.model} failed mid-stream: HTTP {e.status}."))
        ending = {"error": err.body().error.model_dump()}
    except BaseException:
        # Cut (a cancellation) or we broke: the record says so, then the error propagates. The server stopping
        # (uvicorn past TIERGATE_SHUTDOWN_GRACE_S) cancels the request's task, which is still unwinding as we get
        # here; otherwise the client went away (a stream dropped unread is closed later, its task done by then).
        stopping = request_task is not None and not request_task.done() and request_task.cancelling() > 0
        trace.status, trace.error_type = (503, "server_stopping") if stopping else (499, "client_closed")
        raise
    finally:
        slot.release()
        if not got_usage:
            trace.usage, trace.usage_estimated = estimate_usage(req, tokens, pieces), True
        record(trace)
    if ending is not None:
        # After the record, as an answer's last chunk is followed by its record before `[DONE]`: a client that
        # has seen how its stream ended finds it in the ledger (a test read it too early, now and then).
        yield ending


async def prepend(head: dict[str, Any], rest: AsyncGenerator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    try:
        yield head
        async for chunk in rest:
            yield chunk
    finally:
        await rest.aclose()  # closed with us, not whenever the collector gets to it: its `finally` keeps the record


def each(callbacks: list[Callable[[dict[str, Any]], None]]) -> Callable[[dict[str, Any]], None]:
    def call(body: dict[str, Any]) -> None:
        for f in callbacks:
            f(body)

    return call
