"""POST /v1/chat/completions: parse, run the pipeline, answer as JSON or as a server-sent event stream."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from pydantic import ValidationError
from starlette.requests import ClientDisconnect
from starlette.responses import StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway import sse
from gateway.auth import checked_key
from gateway.deps import AppServices
from gateway.errors import GatewayError, InvalidRequest, from_validation
from gateway.protocol import ChatCompletionRequest

CHAT_PATH = "/v1/chat/completions"
# Larger than any context window's worth of text plus a few images as data URLs; a bound on what one request
# may make the gateway hold in memory.
MAX_BODY_BYTES = 32 << 20


def _requested_model(raw: bytes) -> str:
    """Best-effort `model` of a body that failed validation, for its ledger record. orjson, not json: a body nested
    deeper than the stdlib parser's recursion allows made json raise RecursionError here, past the record; orjson
    refuses such depth with a ValueError."""
    try:
        v = orjson.loads(raw).get("model")
        return v if isinstance(v, str) else ""
    except (ValueError, AttributeError):
        return ""


class JSONBody:
    """A JSON response as two ASGI messages, headers encoded once (Starlette's Response re-normalises them)."""

    def __init__(self, body: bytes, headers: Mapping[str, str]) -> None:
        self.body = body
        self.raw_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body})


async def read_body(receive: Receive, limit: int = MAX_BODY_BYTES) -> bytes:
    parts = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            err = InvalidRequest(f"The request body exceeds {limit // (1 << 20)} MiB.", None, "request_too_large")
            err.status = 413
            raise err
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


async def handle_chat(services: AppServices, scope: Scope, receive: Receive, rid: str) -> ASGIApp:
    """Served by gateway/front.py ahead of FastAPI; raises GatewayError for the front to turn into an envelope."""
    # ASGI header names are lower-case already; a plain dict makes every later lookup a hash probe.
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    key = checked_key(scope)
    pipeline, limits = services.pipeline, services.limits  # read once: a policy reload mid-request changes neither
    try:
        raw = await read_body(receive)
    except InvalidRequest as e:
        pipeline.reject(rid, "", e, headers=headers, api_key=key)  # refused unread, but still on the record
        raise
    try:
        req = ChatCompletionRequest.model_validate_json(raw)
    except ValidationError as e:
        err = from_validation([dict(x) for x in e.errors()])
        pipeline.reject(rid, _requested_model(raw), err, headers=headers, api_key=key)
        raise err from None
    try:
        await limits.admit(key, rid)
    except GatewayError as e:
        pipeline.reject(rid, req.model, e, stream=req.stream, headers=headers, api_key=key)
        raise
    if not req.stream:
        result = await pipeline.complete(req, rid, headers, key)
        return JSONBody(orjson.dumps(result.body), result.headers)
    result = await pipeline.stream(req, rid, headers, key)
    assert result.chunks is not None
    return StreamingResponse(sse.encode(result.chunks), media_type="text/event-stream", headers=result.headers)
