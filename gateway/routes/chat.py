"""POST /v1/chat/completions."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError

from gateway import sse
from gateway.deps import Services
from gateway.errors import from_validation
from gateway.protocol import ChatCompletionRequest

router = APIRouter()


def _requested_model(raw: bytes) -> str:
    """Best-effort `model` of a body that failed validation, for its ledger record."""
    try:
        v = json.loads(raw).get("model")
        return v if isinstance(v, str) else ""
    except (ValueError, AttributeError):
        return ""


@router.post("/v1/chat/completions")
async def chat_completions(request: Request, services: Services) -> Response:
    rid: str = request.state.request_id
    raw = await request.body()
    try:
        req = ChatCompletionRequest.model_validate_json(raw)
    except ValidationError as e:
        err = from_validation([dict(x) for x in e.errors()])
        services.pipeline.reject(rid, _requested_model(raw), err, headers=request.headers)
        raise err from None
    if not req.stream:
        result = await services.pipeline.complete(req, rid, request.headers)
        return JSONResponse(result.body, headers=result.headers)
    result = await services.pipeline.stream(req, rid, request.headers)
    assert result.chunks is not None
    return StreamingResponse(sse.encode(result.chunks), media_type="text/event-stream", headers=result.headers)
