"""POST /v1/completions: OpenAI's legacy Completions API, served like chat (gateway/front.py) by translating to and
from it (gateway/completions_api.py). Routing, the cache, limits and the ledger are the chat pipeline's; the ledger
names the endpoint `completions`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from pydantic import ValidationError

from gateway import sse
from gateway.completions_api import CompletionRequest, from_chat, stream_chunks, to_chat
from gateway.errors import from_validation
from gateway.protocol import ChatCompletionRequest
from gateway.routes.chat import Surface


def _parse(raw: bytes) -> tuple[ChatCompletionRequest, CompletionRequest]:
    asked = CompletionRequest.model_validate_json(raw)
    try:
        return ChatCompletionRequest.model_validate(to_chat(asked)), asked
    except ValidationError as e:
        raise from_validation([dict(x) for x in e.errors()], _in_completions_terms) from None


def _param(chat: str) -> str:
    """A chat field as the Completions client wrote it: the one user message is its `prompt`."""
    return "prompt" if chat.startswith("messages") else chat


def _in_completions_terms(chat: str) -> tuple[str, str]:
    param = _param(chat)
    return param, f"'{param}' (in its chat translation, '{chat}')" if chat != param else f"'{param}'"


def _stream(_: CompletionRequest, chunks: AsyncIterator[dict[str, Any]], __: Mapping[str, str]) -> AsyncIterator[bytes]:
    return sse.encode(stream_chunks(chunks))


COMPLETIONS = Surface("completions", _parse, from_chat, _stream, _param)
