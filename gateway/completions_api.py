"""OpenAI's legacy Completions API (`POST /v1/completions`) as a surface of the chat pipeline: the request becomes a
chat request whose one user message is the prompt, and the chat answer (or stream) becomes `text_completion`s.

Apps and libraries still call it (LangChain's `OpenAI` class, scripts written for `gpt-3.5-turbo-instruct`); without
it they got a bare 404. Frontier models take chat only, so a gateway in front of them serves a text completion as
chat, as LiteLLM does for a chat model: the text is the model's reply to the prompt, not a raw continuation of it
(README, "Endpoints"). Routing, cache (shared with the identical chat request), limits and ledger are chat's.

What has no chat equivalent is refused with a 400 naming it, before anything is routed or paid for: a prompt of
token ids, several prompts in one request, `suffix` (fill-in-the-middle), `echo`, `best_of` other than `n`, and
`logprobs` (the legacy per-token layout).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, StrictBool, WithJsonSchema, model_validator

from gateway.errors import InvalidRequest
from gateway.protocol import ints_fit, refused_unless

COMPLETIONS_PATH = "/v1/completions"
# OpenAI's default for this API (chat has none): an app that sends no max_tokens gets what OpenAI would give it.
DEFAULT_MAX_TOKENS = 16
_ONE_PROMPT = {
    "title": "Prompt",
    "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 1}],
}


class CompletionRequest(BaseModel):
    """Only what is translated or refused is declared; every other parameter (`temperature`, `n`, `stop`, `user`,
    llama.cpp's `top_k`, ...) has the same name and meaning in chat and goes there as sent, to be checked by chat's
    rules (gateway/chat_rules.py), which name it as the client wrote it."""

    model_config = ConfigDict(extra="allow", frozen=True)  # kept for repeated bodies (gateway/body_memo.py)
    model: str = Field(min_length=1)
    # Token ids and several prompts are parsed to be refused by name (`to_chat`); the schema says what is served.
    prompt: Annotated[str | list[str] | list[int] | list[list[int]], WithJsonSchema(_ONE_PROMPT)]
    max_tokens: int | None = Field(default=DEFAULT_MAX_TOKENS, strict=True)  # as chat's: not `true` or "16"
    stream: StrictBool = False  # strict, as OpenAI: not "yes" or 1
    suffix: Annotated[str | None, refused_unless("fill-in-the-middle has no chat form", "")] = None
    echo: Annotated[StrictBool | None, refused_unless("the prompt is not echoed", False)] = None
    best_of: int | None = Field(default=None, strict=True)
    logprobs: Annotated[int | None, refused_unless("the legacy per-token layout is not served")] = None

    @model_validator(mode="after")
    def _ints_fit(self) -> Self:
        ints_fit(self)
        return self


def _unsupported(param: str, what: str) -> InvalidRequest:
    return InvalidRequest(f"{what} is not supported by this gateway.", param, "unsupported_parameter")


def _prompt(prompt: str | list[str] | list[int] | list[list[int]]) -> str:
    if isinstance(prompt, str):
        return prompt
    if len(prompt) == 1 and isinstance(prompt[0], str):
        return prompt[0]
    if all(isinstance(p, str) for p in prompt):  # also none at all
        raise InvalidRequest(f"'prompt' holds {len(prompt)} prompts; send one per request.", "prompt", "invalid_value")
    raise _unsupported("prompt", "A prompt of token ids (the models behind the gateway tokenize differently)")


def to_chat(req: CompletionRequest) -> dict[str, Any]:
    """The chat completion request body that asks the same; raises InvalidRequest for what chat cannot carry."""
    extra = req.model_extra or {}
    if req.suffix:
        raise _unsupported("suffix", "Fill-in-the-middle (`suffix`)")
    if req.echo:
        raise _unsupported("echo", "Echoing the prompt (`echo`)")
    if req.logprobs is not None:
        raise _unsupported("logprobs", "The legacy per-token `logprobs`")
    if req.best_of is not None and req.best_of != (extra.get("n") or 1):
        raise _unsupported("best_of", "Choosing the best of several answers (`best_of` other than `n`)")
    body: dict[str, Any] = {**extra, "model": req.model, "stream": req.stream}
    body["messages"] = [{"role": "user", "content": _prompt(req.prompt)}]
    if req.max_tokens is not None:
        body["max_tokens"] = req.max_tokens
    return body


def _shell(chat: dict[str, Any], choices: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": "cmpl-" + str(chat.get("id", "")).removeprefix("chatcmpl-"),
        "object": "text_completion",
        "created": chat.get("created"),
        "model": chat.get("model"),
        "choices": choices,
    }
    if "system_fingerprint" in chat:
        out["system_fingerprint"] = chat["system_fingerprint"]
    if chat.get("usage") is not None:
        out["usage"] = chat["usage"]
    return out


def _choice(c: dict[str, Any], text: Any) -> dict[str, Any]:
    return {"text": text or "", "index": c.get("index", 0), "logprobs": None, "finish_reason": c.get("finish_reason")}


def from_chat(_: CompletionRequest, chat: dict[str, Any]) -> dict[str, Any]:
    """The text_completion for a chat completion answer: each choice's message content as its text."""
    return _shell(chat, [_choice(c, (c.get("message") or {}).get("content")) for c in chat.get("choices") or []])


async def stream_chunks(chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    """The text_completion chunks for a chat completion stream. Chat's opening chunk (the role, no text) has no
    counterpart and is dropped; the usage chunk and an error ending pass as they are."""
    async for c in chunks:
        if "error" in c:
            yield c
            continue
        choices = [_choice(x, (x.get("delta") or {}).get("content")) for x in c.get("choices") or []]
        if c.get("usage") is None and all(not x["text"] and x["finish_reason"] is None for x in choices):
            continue
        yield _shell(c, choices)
