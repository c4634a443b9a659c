"""POST /api/route: how the gateway would route a chat request now, and why, without calling a model (an
operator's question: "why did this prompt go to gpt-4o?"). The body is a chat completion request; the answer names
the policy, the classifier's score, the minimum tier, the fallback chain with each candidate's estimated cost (and,
under best_effort, the weaker models tried if every one in it fails), the baseline's, and the models passed over
with their reasons. Nothing is recorded: nothing was served. Under /api/, so
with keys on only an admin key may ask (gateway/auth.py), and it is routed as that key."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError

from gateway.auth import checked_key
from gateway.deps import Services
from gateway.errors import from_validation
from gateway.explain import explain as explain_route
from gateway.openapi import error_docs, json_body
from gateway.protocol import ChatCompletionRequest

router = APIRouter()


@router.post(
    "/api/route",
    openapi_extra=json_body("ChatCompletionRequest"),
    responses=error_docs({404: "No such model or policy.", 503: "No model that could serve it is available now."}),
)
async def explain(request: Request, services: Services) -> dict[str, Any]:
    try:
        req = ChatCompletionRequest.model_validate_json(await request.body())
    except ValidationError as e:
        raise from_validation([dict(x) for x in e.errors()]) from None
    return await explain_route(services.pipeline, req, checked_key(request.scope), request.headers)
