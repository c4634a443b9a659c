"""POST /v1/responses: OpenAI's Responses API, served like chat (gateway/front.py) by translating to and from it
(gateway/responses_api.py). Routing, the cache, limits and the ledger are the chat pipeline's; the ledger names the
endpoint `responses`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from fastapi import APIRouter

from gateway import sse
from gateway.errors import NotFound
from gateway.openapi import error_docs
from gateway.responses_api import STORED_RESPONSE_PATH, ResponsesRequest, from_chat, stream_events, to_chat
from gateway.routes.chat import Surface, translated


def _param(chat: str) -> str:
    """A field of the chat request a Responses body was translated to, as the Responses client wrote it: chat's
    messages come from `input`; its tools nest under `function`, and its `response_format` under `json_schema`, what
    Responses keeps flat."""
    if chat.startswith("messages"):
        return "input"
    if chat.startswith(("tools.", "tool_choice.")):
        return chat.replace(".function.", ".", 1).removesuffix(".function")
    if chat.startswith("response_format.json_schema."):  # `text.format` holds flat what chat nests
        return "text.format." + chat.removeprefix("response_format.json_schema.")
    if chat == "response_format":
        return "text.format"
    return chat


def _stream(
    asked: ResponsesRequest, chunks: AsyncIterator[dict[str, Any]], headers: Mapping[str, str]
) -> AsyncIterator[bytes]:
    model = headers.get("x-tiergate-model", asked.model)  # the routed model, known before the first event
    return sse.encode_typed(stream_events(asked, chunks, model))


RESPONSES = Surface("responses", translated(ResponsesRequest, to_chat, _param), from_chat, _stream, _param)


router = APIRouter()


# One route for both methods, so that a 405 on this path names both in its `Allow` (of two routes, FastAPI names
# only the first's method). gateway/openapi.py gives each method its own operation id.
@router.api_route(
    STORED_RESPONSE_PATH,
    methods=["GET", "DELETE"],
    responses=error_docs({404: "Always: the gateway stores no responses."}),
)
async def stored_response(response_id: str) -> None:
    """OpenAI keeps responses for retrieval; a gateway in front of many providers keeps none (it would hold every
    app's answers). Said plainly rather than with a bare 404."""
    raise NotFound(
        f"The response '{response_id}' is not stored: this gateway stores no responses (send `store` as you like;"
        " it is not acted on).",
        "response_id",
        "response_not_found",
    )
