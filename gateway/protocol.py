"""OpenAI wire types for the endpoints Tiergate serves, and what a chat request needs of a model.

Request bodies allow unknown keys (clients send newer parameters than we know); they are forwarded to the
upstream untouched (`extras`) rather than dropped or rejected. A parsed chat request is frozen: the same object
serves every request with the same body bytes (gateway/body_memo.py).
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import replace
from functools import cached_property
from typing import Annotated, Any, Literal, Self

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from classifiers.features import content_text
from gateway import chat_rules
from gateway.request_ids import PATTERN, is_request_id
from router.select import NO_NEEDS, Needs
from router.tokens import estimate_tokens

_Open = ConfigDict(extra="allow")
# A parsed chat request may serve many requests (gateway/body_memo.py): assigning to it is an error.
_Kept = ConfigDict(extra="allow", frozen=True)
# What an answer does not depend on: left out of the request's content digest (and so of the cache key).
NOT_CONTENT = frozenset({"model", "stream", "stream_options", "user"})

# orjson writes every body the gateway sends on (upstream calls, cache keys, echoed fields) and takes integers in
# [-2**63, 2**64); JSON sets no bound and pydantic keeps any size. Such a number anywhere in a request is found when
# it is parsed: the client's 400 naming where it is, not a 500 from the first write (after the upstream call, when
# the Responses API echoes `metadata`).
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 64) - 1
_INT_RANGE = range(_INT_MIN, _INT_MAX + 1)


def _oversized_int(value: Any) -> list[str] | None:
    """The path (innermost last) to the first integer outside `_INT_RANGE` in a parsed body, or None."""
    if type(value) is int:  # not bool, a subclass
        return None if value in _INT_RANGE else []
    if isinstance(value, BaseModel):  # every field, extras included
        items: Any = (*value.__dict__.items(), *(value.__pydantic_extra__ or {}).items())
    elif isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None  # strings, floats, None: the bulk of a body, passed over at once
    for key, v in items:
        if (path := _oversized_int(v)) is not None:
            path.append(str(key))
            return path
    return None


def ints_fit(value: Any, *where: str) -> None:
    """Raises the validation error for an integer orjson cannot write (see `_INT_RANGE`) in `value`, found at
    `where`; `ctx.param` names it for gateway/errors.py: from_validation (a model validator's own location is the
    whole body)."""
    if (path := _oversized_int(value)) is not None:
        param = ".".join((*where, *reversed(path)))
        raise PydanticCustomError(
            "int_out_of_range", "integers must lie between -2**63 and 2**64 - 1", {"param": param}
        )


def _chat_ints_fit(req: ChatCompletionRequest) -> None:
    """`ints_fit` over only what can hold an integer, for the hot path: declared integers are bounded by their
    fields; strings (most of a body) are not looked at."""
    for i, m in enumerate(req.messages):
        if type(m.content) is list:
            ints_fit(m.content, "messages", str(i), "content")
        if m.__pydantic_extra__:  # tool_calls, name, ...
            ints_fit(m.__pydantic_extra__, "messages", str(i))
    # Every declared field that holds arbitrary JSON (test_parse_fuzz draws each with junk: `audio`, added later,
    # was missing here, and `{"voice": -2**63 - 1}` became a 500 when the cache key was written).
    for name in ("tools", "tool_choice", "response_format", "audio", "stream_options"):
        if (v := getattr(req, name)) is not None:
            ints_fit(v, name)
    if req.__pydantic_extra__:
        ints_fit(req.__pydantic_extra__)


def refused_unless(why: str, *accepted: object) -> WithJsonSchema:
    """The JSON Schema of a declared parameter the gateway refuses unless it is null (or one of `accepted`): parsed,
    so that the refusal names it, but not offered to a client generated from /openapi.json."""
    return WithJsonSchema({"enum": [*accepted, None], "description": f"Refused unless null: {why}."})


# Two of the rules a message is checked by (`_content_unless_assistant`; gateway/chat_rules.py), said in its JSON
# Schema too, so that a client generated from /openapi.json refuses what the gateway would: any role but
# "assistant" needs content; a tool message needs the id of the call it answers. (Rules across messages, such as a
# tool call's answer following it, are the gateway's alone: JSON Schema cannot say them.)
_MESSAGE_RULES: dict[str, Any] = {
    "allOf": [
        {
            "if": {"required": ["role"], "properties": {"role": {"not": {"const": "assistant"}}}},
            "then": {"required": ["content"], "properties": {"content": {"not": {"type": "null"}}}},
        },
        {
            "if": {"required": ["role"], "properties": {"role": {"const": "tool"}}},
            "then": {"required": ["tool_call_id"], "properties": {"tool_call_id": {"type": "string"}}},
        },
    ]
}


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, json_schema_extra=_MESSAGE_RULES)
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = Field(default=None, validate_default=True)

    @field_validator("content")
    @classmethod
    def _content_unless_assistant(cls, v: Any, info: ValidationInfo) -> Any:
        # As OpenAI: only an assistant turn may go without content (it may carry tool calls instead). Checked here,
        # so the client gets a 400 naming the field, not an upstream's rejection after classification.
        if v is None and info.data.get("role", "assistant") != "assistant":
            raise ValueError(f"a {info.data['role']} message needs content (a string or a list of parts)")
        return v


class StreamOptions(BaseModel):
    model_config = _Kept
    include_usage: StrictBool = False


class ChatCompletionRequest(BaseModel):
    model_config = _Kept
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    # Strict, as OpenAI: lax mode read "stream": "yes" (or 1) as true.
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    # Numbers strict, as OpenAI: lax mode read `"max_tokens": true` as 1 and `"temperature": "0.5"` as 0.5.
    temperature: float | None = Field(default=None, strict=True, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, strict=True, ge=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, strict=True, ge=1, le=_INT_MAX)
    max_completion_tokens: int | None = Field(default=None, strict=True, ge=1, le=_INT_MAX)
    n: int | None = Field(default=None, strict=True, ge=1, le=128)  # OpenAI's own bounds
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, strict=True, ge=_INT_MIN, le=_INT_MAX)
    presence_penalty: float | None = Field(default=None, strict=True, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, strict=True, ge=-2.0, le=2.0)
    logit_bias: dict[str, StrictFloat] | None = None
    logprobs: StrictBool | None = None
    top_logprobs: int | None = Field(default=None, strict=True, ge=0, le=20)
    user: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: StrictBool | None = None
    # OpenAI's deprecated form of `tools` / `tool_choice`, still served: apps written before tools send them.
    functions: list[dict[str, Any]] | None = None
    function_call: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    # What the answer is made of ("audio" needs a model with audio output), and the voice and format for audio.
    modalities: list[Literal["text", "audio"]] | None = None
    audio: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _checks(self) -> Self:
        _chat_ints_fit(self)
        chat_rules.check(self)
        return self

    def extras(self) -> dict[str, Any]:
        # A copy all the way down: it goes to an upstream call, which may change what it is given, and this request
        # may serve the next one with the same body.
        return copy.deepcopy(self.model_extra) if self.model_extra else {}

    # A cached_property, not a private attribute: pydantic serves those through its __getattr__, ~2 us a read.
    @cached_property
    def content_digest(self) -> str:
        """sha256 of what an answer depends on, canonical (keys sorted): the request but NOT_CONTENT. Computed once
        per parsed request; the response cache's key is made from it."""
        body = self.model_dump(exclude_none=True, exclude=set(NOT_CONTENT))
        return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()

    def sampling_params(self) -> dict[str, Any]:
        """Known OpenAI parameters that were set, as the upstream call takes them."""
        skip = {"model", "messages", "stream", "stream_options"}
        params = {
            k: v for k, v in self.model_dump(exclude_none=True, exclude=skip).items() if k in type(self).model_fields
        }
        if "stop" in params:
            # An empty stop sequence matches before the first token: llama-server answered `stop: ""` (or [""], or
            # ["", "x"]) with an empty message at once, a call that could only waste the client's time. It stops
            # nothing, so it is left out; so is a list left empty, which some servers read as "no default stops".
            stops = [s for s in ([params["stop"]] if isinstance(params["stop"], str) else params["stop"]) if s]
            if stops:
                params["stop"] = stops if isinstance(params["stop"], list) else stops[0]
            else:
                del params["stop"]
        return params

    def carries_unchecked(self) -> bool:
        """Does the request carry anything passed on without the gateway knowing what it means: parameters it does not
        model, content parts of a type it does not know, tool calls of a type other than "function"? A server's 500
        to such a request may be about that (gateway/cooldown.py). llama-server answers `reasoning_format: "nonsense"`,
        a `video_url` part and a `custom` tool call with a 500."""
        if self.model_extra:
            return True
        for m in self.messages:
            if type(m.content) is list and any(p.get("type") not in chat_rules.KNOWN_PARTS for p in m.content):
                return True
            calls = m.__pydantic_extra__.get("tool_calls") if m.__pydantic_extra__ else None
            if calls and any(c.get("type") != "function" for c in calls):
                return True
        return False

    def wants_usage_chunk(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def content_needs(self) -> Needs:
        """Only what the request's content asks of a model (images, audio, files in the messages; an answer in
        audio): cheap enough for every request, including those that name their model (router/select.py: direct)."""
        kinds = {p.get("type") for m in self.messages if type(m.content) is list for p in m.content}
        audio_out = self.modalities is not None and "audio" in self.modalities
        forced = _forces_call(self.tool_choice) or isinstance(self.function_call, dict)  # the deprecated form names one
        if not kinds and not audio_out and not forced:
            return NO_NEEDS
        return Needs(
            forced_call=forced,
            vision="image_url" in kinds,
            audio_input="input_audio" in kinds,
            files="file" in kinds,
            audio_output=audio_out,
        )

    def needs(self) -> Needs:
        tokens = sum(estimate_tokens(content_text(m.content)) for m in self.messages)
        fmt = (self.response_format or {}).get("type")
        # The deprecated `functions` ask for tool calling too: a model without it answers in text where a call was
        # wanted.
        legacy = bool(self.functions) and self.function_call != "none"
        return replace(
            self.content_needs(),
            # `tool_choice: "none"` forbids calling them: any model will do (gateway/transport.py leaves the tools out
            # for one without tool calling).
            tools=(bool(self.tools) and self.tool_choice != "none") or legacy,
            json_mode=fmt in ("json_object", "json_schema"),
            # An estimate for routing (router/tokens.py); billing uses the upstream's real counts.
            context_tokens=int(tokens) + 4 * len(self.messages),
            expected_output_tokens=self.max_completion_tokens or self.max_tokens or 256,
            choices=self.n or 1,
        )


def _forces_call(choice: str | dict[str, Any] | None) -> bool:
    """Does `tool_choice` require a tool call: "required", a named function (or custom tool), or `allowed_tools` in
    mode "required"? ("auto" and "none", as strings or as allowed_tools' mode, leave it to the model.)"""
    if isinstance(choice, dict):
        allowed = choice.get("allowed_tools") if choice.get("type") == "allowed_tools" else None
        return not isinstance(allowed, dict) or allowed.get("mode") != "auto"
    return choice == "required"


MAX_EMBEDDING_INPUTS = 2048  # OpenAI's bound on one request's inputs
_TEXT = {"type": "string", "minLength": 1}  # OpenAI refuses an empty string to embed
_EMBEDDING_INPUT: dict[str, Any] = {
    "title": "Input",
    "anyOf": [
        _TEXT,
        {"type": "array", "items": _TEXT},
        {"type": "array", "items": {"type": "integer"}},
        {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}},
    ],
    "minItems": 1,
    "maxItems": MAX_EMBEDDING_INPUTS,
}


class EmbeddingRequest(BaseModel):
    model_config = _Open
    model: str = Field(min_length=1)
    # Counted, and empty texts refused, by the route (its own messages); said here for the schema. JSON Schema's
    # minItems and maxItems apply only when `input` is an array, so a string stays valid.
    input: Annotated[str | list[str] | list[int] | list[list[int]], WithJsonSchema(_EMBEDDING_INPUT)]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1, strict=True)
    user: str | None = None
    # Text Embeddings Inference's parameter: embed the first tokens of an input longer than the built-in model reads,
    # instead of refusing it. Not OpenAI's (extra_body with its SDK).
    truncate: StrictBool = False

    @model_validator(mode="after")
    def _ints_fit(self) -> Self:
        ints_fit(self)
        return self


class FeedbackRequest(BaseModel):
    """A judgement of one answer: `request_id` is the answer's `x-request-id`; `score` 1 = good enough, 0 = not."""

    model_config = ConfigDict(extra="forbid")
    request_id: str = Field(min_length=1, max_length=200, json_schema_extra={"pattern": f"^{PATTERN.pattern}$"})
    # Strict: a number, not `true` or "1" (lax mode read `false` as a judgement of 0, a label for retraining).
    score: float = Field(ge=0.0, le=1.0, strict=True)

    @field_validator("request_id")
    @classmethod
    def _ours(cls, v: str) -> str:
        # Any other id can match no request: stored, it would be a label lost in silence. The likeliest one is the
        # answer body's `id` (chatcmpl-..., resp_...), which is the model server's, not the gateway's.
        if not is_request_id(v):
            why = "expected an answer's x-request-id header ('tg-' and 32 hex digits), not the answer body's id"
            raise PydanticCustomError("value_error", why)
        return v


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail
