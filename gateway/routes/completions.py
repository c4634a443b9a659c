"""POST /v1/completions: OpenAI's legacy Completions API, served like chat (gateway/front.py) by translating to and
from it (gateway/completions_api.py). Routing, the cache, limits and the ledger are the chat pipeline's; the ledger
names the endpoint `completions`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from gateway import sse
from gateway.completions_api import CompletionRequest, from_chat, stream_chunks, to_chat
from gateway.routes.chat import Surface, translated


def _param(chat: str) -> str:
    """A chat field as the Completions client wrote it: the one user message is its `prompt`."""
    return "prompt" if chat.startswith("messages") else chat


def _stream(_: CompletionRequest, chunks: AsyncIterator[dict[str, Any]], __: Mapping[str, str]) -> AsyncIterator[bytes]:
    return sse.encode(stream_chunks(chunks))


COMPLETIONS = Surface("completions", translated(CompletionRequest, to_chat, _param), from_chat, _stream, _param)
