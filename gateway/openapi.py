"""The gateway's OpenAPI document as the gateway really answers: FastAPI's, plus the chat endpoint that
gateway/front.py serves ahead of FastAPI, with errors in OpenAI's envelope and 400 where FastAPI would say 422.

Without this, /docs and any client generated from /openapi.json would miss the one endpoint apps use and promise
422 bodies the gateway never sends (gateway/errors.py turns every validation failure into a 400).
"""

from __future__ import annotations

import warnings
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from gateway import tags
from gateway.completions_api import COMPLETIONS_PATH, CompletionRequest
from gateway.protocol import ChatCompletionRequest, EmbeddingRequest, ErrorResponse
from gateway.responses_api import RESPONSES_PATH, STORED_RESPONSE_PATH, ResponsesRequest
from gateway.routes.chat import CHAT_PATH

_REF = "#/components/schemas/{model}"


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF.format(model="ErrorResponse")}}},
    }


def error_docs(by_status: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """A route's documented error answers (FastAPI's `responses=`), each in OpenAI's envelope."""
    return {status: _error(text) for status, text in by_status.items()}


def json_body(model: str) -> dict[str, Any]:
    """A route's required JSON body, documented as one of the schemas `build` adds: for routes that read their own
    body (so that a bad one is answered, and recorded, as the gateway's own 400)."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": _REF.format(model=model)}}},
        }
    }


def _add_models(schemas: dict[str, Any], *models: type[BaseModel]) -> None:
    for model in models:
        schema = model.model_json_schema(ref_template=_REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema


LIMITED = (
    "The API key is over its requests per minute (code `rate_limit_exceeded`, with `retry-after`) or has spent its"
    " budget (code `insufficient_quota`)."
)


_CHAT = (
    "OpenAI's chat completion. `model` is `auto` (the default policy), a policy's name (routed by that "
    "policy) or a concrete model's name. Unknown parameters are forwarded to the upstream. With "
    "`stream: true` the answer is a server-sent event stream ending in `data: [DONE]`. Response headers "
    "say where it went and what it cost: x-tiergate-model, -tier, -score, -cost-usd, -cache. A name the policy "
    "file's `aliases` map is routed as they say."
)
_RESPONSES = (
    "OpenAI's Responses API, served by the same routing, cache, limits and ledger as chat. `model` as for chat. "
    "Stored responses (`previous_response_id`, `conversation`), background runs, built-in tools and file inputs "
    "are refused with a 400 naming the parameter. With `stream: true` the answer is the API's stream of typed "
    "events, ending in `response.completed` (or `response.incomplete` / `response.failed`)."
)

_COMPLETIONS = (
    "OpenAI's legacy Completions API, served as chat (the prompt is one user message; the text is the model's reply "
    "to it) by the same routing, cache, limits and ledger. `model` as for chat; `max_tokens` defaults to 16, as "
    "OpenAI's. Token-id prompts, several prompts, `suffix`, `echo`, `logprobs` and `best_of` other than `n` are "
    "refused with a 400 naming the parameter. With `stream: true`: `text_completion` chunks, then `data: [DONE]`."
)


# What the gateway accepts of a header, so that a client (or a fuzzer) generating values from the schema is not
# refused: a value that matches is always accepted (tests/unit/test_openapi_headers.py); a few the gateway also
# takes (leading zeros, spaces) do not match.
PATTERNS = {
    "x-tiergate-tags": f"^{tags.TAG}(?: *, *{tags.TAG}){{0,{tags.MAX_TAGS - 1}}}$",
    # 1 to 2592000 (30 days) without leading zeros: 1-999999, 1000000-2499999, 2500000-2589999, 2590000-2592000.
    "x-tiergate-cache-ttl": "^(?:[1-9][0-9]{0,5}|1[0-9]{6}|2[0-4][0-9]{5}|25[0-8][0-9]{4}|259[01][0-9]{3}|2592000)$",
    "x-tiergate-min-tier": "^[0-9]$",
    # A positive decimal: a non-zero digit before any exponent, and few enough digits and a small enough exponent
    # that it cannot round to 0 or overflow.
    "x-tiergate-max-cost-usd": "^(?=[^eE]*[1-9])[0-9]{0,20}(?:\\.[0-9]{0,20})?(?:[eE][+-]?[0-9]{1,2})?$",
}


def _header(name: str, description: str) -> dict[str, Any]:
    """An optional request header of the chat and responses endpoints, as OpenAPI declares a parameter."""
    schema: dict[str, Any] = {"type": "string"}
    if name in PATTERNS:
        schema["pattern"] = PATTERNS[name]
    return {"name": name, "in": "header", "required": False, "description": description, "schema": schema}


_HEADERS: list[dict[str, Any]] = [
    _header("x-tiergate-tags", "Up to 8 comma-separated tags (1-64 of `A-Za-z0-9_.:/=-` each) to attribute spend to."),
    _header("cache-control", "`no-cache`: skip the cache lookup but refresh the entry; `no-store`: neither."),
    _header("x-tiergate-cache-ttl", "Seconds (1-2592000) to keep this answer cached, instead of the policy's ttl_s."),
    _header(
        "x-tiergate-min-tier", "At least this tier (0-9) for this request; it only raises the tier the score gives."
    ),
    _header("x-tiergate-max-cost-usd", "No model whose estimated cost for this request is higher (US dollars, > 0)."),
]


def _chat_operation(
    summary: str = "Chat completion (routed)",
    description: str = _CHAT,
    operation_id: str = "create_chat_completion",
    model: str = "ChatCompletionRequest",
) -> dict[str, Any]:
    return {
        "summary": summary,
        "description": description,
        "operationId": operation_id,
        "parameters": _HEADERS,
        **json_body(model),
        "responses": {
            "200": {
                "description": "The answer (JSON), or its stream (text/event-stream) when `stream` is true.",
                "content": {
                    "application/json": {"schema": {"type": "object"}},
                    "text/event-stream": {"schema": {"type": "string"}},
                },
            },
            "400": _error(
                "Malformed JSON, a schema violation (`param` names the field), or a request no model "
                "the policy allows could serve."
            ),
            "403": _error("The policy does not allow this model to be requested directly."),
            "404": _error("No such model or policy."),
            "429": _error(LIMITED),
            "413": _error("The body exceeds the size limit."),
            "502": _error("Every candidate model failed upstream."),
            "503": _error("No model that could serve the request is available now."),
            "504": _error("Every candidate model timed out."),
        },
    }


def build(app: FastAPI) -> dict[str, Any]:
    """The document for `app` (built by gateway/app.create_app); computed once, then served as is."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    with warnings.catch_warnings():
        # FastAPI gives every method of one route the same operation id, and warns; the ids are set below.
        warnings.filterwarnings("ignore", "Duplicate Operation ID stored_response", UserWarning)
        doc = get_openapi(title=app.title, version=app.version, routes=app.routes)
    for method, op in doc["paths"].get(STORED_RESPONSE_PATH, {}).items():
        op["operationId"] = {"get": "retrieve_response", "delete": "delete_response"}[method]
    schemas: dict[str, Any] = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    _add_models(schemas, ChatCompletionRequest, ResponsesRequest, CompletionRequest, EmbeddingRequest, ErrorResponse)
    for ops in doc["paths"].values():
        for op in ops.values():
            responses = op.setdefault("responses", {})
            if responses.pop("422", None) is not None or "parameters" in op or "requestBody" in op:
                responses.setdefault("400", _error("The request is invalid: `param` names the field."))
    responses = _chat_operation("Response (routed)", _RESPONSES, "create_response", "ResponsesRequest")
    completions = _chat_operation("Text completion (routed)", _COMPLETIONS, "create_completion", "CompletionRequest")
    doc["paths"] = {
        CHAT_PATH: {"post": _chat_operation()},
        RESPONSES_PATH: {"post": responses},
        COMPLETIONS_PATH: {"post": completions},
        **doc["paths"],
    }
    app.openapi_schema = doc
    return doc
