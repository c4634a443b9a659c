"""POST /v1/chat/completions (and, through a Surface, /v1/responses and /v1/completions): parse, check the key's
limits, run the pipeline, answer as JSON or as a server-sent event stream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect
from starlette.responses import StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway import sse, tags
from gateway.auth import checked_key
from gateway.deps import AppServices
from gateway.disconnect import Watch
from gateway.errors import GatewayError, InvalidRequest, from_validation, internal_error
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


@dataclass(frozen=True)
class Surface:
    """One OpenAI API over the chat pipeline: how its body becomes a chat request (plus what the answer's shape needs
    of the original), and how a chat answer or stream becomes its answer. The chat API is the identity."""

    endpoint: str  # the ledger's name for it
    parse: Callable[[bytes], tuple[ChatCompletionRequest, Any]]
    body: Callable[[Any, dict[str, Any]], dict[str, Any]]
    stream: Callable[[Any, AsyncIterator[dict[str, Any]], Mapping[str, str]], AsyncIterator[bytes]]
    # A chat field an error names (`param`), as this API's client wrote it: `messages` is a Response's `input`.
    param: Callable[[str], str] = str


def translated(
    model: type[BaseModel], to_chat: Callable[[Any], dict[str, Any]], param: Callable[[str], str]
) -> Callable[[bytes], tuple[ChatCompletionRequest, Any]]:
    """The parse of an API served by translating it to chat: its own request model first, then chat's rules on the
    translation, whose refusal names the field as the client wrote it (`param`) and the chat field refused."""

    def shown(chat: str) -> tuple[str, str]:
        own = param(chat)
        return own, f"'{own}' (in its chat translation, '{chat}')" if chat != own else f"'{own}'"

    def parse(raw: bytes) -> tuple[ChatCompletionRequest, Any]:
        asked = model.model_validate_json(raw)
        try:
            return ChatCompletionRequest.model_validate(to_chat(asked)), asked
        except ValidationError as e:
            raise from_validation([dict(x) for x in e.errors()], shown) from None

    return parse


CHAT = Surface(
    "chat.completions",
    lambda raw: (ChatCompletionRequest.model_validate_json(raw), None),
    lambda _, body: body,
    lambda _, chunks, __: sse.encode(chunks),
)


async def handle_chat(
    services: AppServices, scope: Scope, receive: Receive, rid: str, surface: Surface = CHAT
) -> ASGIApp:
    """Served by gateway/front.py ahead of FastAPI; raises GatewayError for the front to turn into an envelope."""
    # ASGI header names are lower-case already; a plain dict makes every later lookup a hash probe.
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    key = checked_key(scope)
    pipeline, limits = services.pipeline, services.limits  # read once: a policy reload mid-request changes neither
    where = surface.endpoint
    try:
        raw = await read_body(receive)
    except InvalidRequest as e:
        pipeline.reject(rid, "", e, headers=headers, api_key=key, endpoint=where)  # refused unread, still on record
        raise
    try:
        req, asked = services.bodies.parse(surface.endpoint, raw, surface.parse)
    except (ValidationError, InvalidRequest) as e:
        err = from_validation([dict(x) for x in e.errors()]) if isinstance(e, ValidationError) else e
        pipeline.reject(rid, _requested_model(raw), err, headers=headers, api_key=key, endpoint=where)
        raise err from None
    except Exception:  # a bug in a translation: the client gets a 500 (gateway/front.py), and it is on the record
        pipeline.reject(rid, _requested_model(raw), internal_error(rid), headers=headers, api_key=key, endpoint=where)
        raise
    try:
        if tags.HEADER in headers:
            tags.parse(headers[tags.HEADER])  # a malformed one is refused here, on the record like any bad input
        if key is not None and key.limited:  # tested here too: an awaited call that returns at once still costs
            await limits.admit(key, rid)
    except GatewayError as e:
        pipeline.reject(rid, req.model, e, stream=req.stream, headers=headers, api_key=key, endpoint=where)
        raise
    watch = Watch(receive)  # the client leaving cancels the upstream call (gateway/disconnect.py)
    try:
        if not req.stream:
            result = await watch.run(pipeline.complete(req, rid, headers, key, where, watch))
            assert result.body is not None
            return JSONBody(orjson.dumps(surface.body(asked, result.body)), result.headers)
        result = await watch.run(pipeline.stream(req, rid, headers, key, where, watch))
    except GatewayError as e:  # routing's refusals name chat's fields (gateway/errors.py: from_unsatisfiable)
        if e.param is not None:
            e.param = surface.param(e.param)
        raise
    assert result.chunks is not None
    body = surface.stream(asked, result.chunks, result.headers)
    return StreamingResponse(body, media_type="text/event-stream", headers=result.headers)
