"""Server-sent events as OpenAI streams them: chat chunks as `data: <json>`, then `data: [DONE]`; the Responses
API's events as `event: <type>` and `data: <json>`, with no [DONE]."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

DONE = b"data: [DONE]\n\n"


def event(obj: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


async def encode(chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    async for c in chunks:
        yield event(c)
    yield DONE


async def encode_typed(events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    async for e in events:
        yield b"event: " + str(e["type"]).encode() + b"\n" + event(e)
