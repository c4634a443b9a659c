"""POST /v1/chat/completions: parse, run the pipeline, answer as JSON or as a server-sent event stream."""

from __future__ import annotations

import json

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway import sse
from gateway.deps import AppServices
from gateway.errors import from_validation
from gateway.protocol import ChatCompletionRequest

CHAT_PATH = "/v1/chat/completions"


def _requested_model(raw: bytes) -> str:
    """Best-effort `model` of a body that failed validation, for its ledger record."""
    try:
        v = json.loads(raw).get("model")
        return v if isinstance(v, str) else ""
    except (ValueError, AttributeError):
        return ""


async def handle_chat(services: AppServices, request: Request, rid: str) -> Response:
    """Served by gateway/front.py ahead of FastAPI; raises GatewayError for the front to turn into an envelope."""
    raw = await request.body()
    try:
        req = ChatCompletionRequest.model_validate_json(raw)
    except ValidationError as e:
        err = from_validation([dict(x) for x in e.errors()])
        services.pipeline.reject(rid, _requested_model(raw), err, headers=request.headers)
        raise err from None
    if not req.stream:
        result = await services.pipeline.complete(req, rid, request.headers)
        return Response(orjson.dumps(result.body), media_type="application/json", headers=result.headers)
    result = await services.pipeline.stream(req, rid, request.headers)
    assert result.chunks is not None
    return StreamingResponse(sse.encode(result.chunks), media_type="text/event-stream", headers=result.headers)
