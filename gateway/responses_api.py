"""OpenAI's Responses API over the chat pipeline: a `POST /v1/responses` body becomes a chat completion request, and
the chat answer (or its stream of chunks) becomes a Response object (or the Responses API's stream of events).

Translation only, no I/O. What has no chat equivalent is refused with a 400 naming the parameter, never dropped in
silence: stored conversations (`previous_response_id`, `conversation`; the gateway stores no responses), background
runs, built-in tools (web search, file search, computer use, ...) and file inputs.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator
from pydantic_core import PydanticCustomError

from gateway import chat_rules
from gateway.errors import InvalidRequest
from gateway.protocol import ints_fit, refused_unless

RESPONSES_PATH = "/v1/responses"
STORED_RESPONSE_PATH = "/v1/responses/{response_id}"  # GET and DELETE: refused, nothing is stored
# Accepted and not acted on: they change nothing a gateway without stored responses could honour.
IGNORED = frozenset(
    {
        "store",
        "metadata",
        "service_tier",
        "prompt_cache_key",
        "truncation",
        "stream_options",
    }
)


# What `include` may name (OpenAI's list). Only the output's log-probabilities concern what a chat answer carries; the
# others belong to built-in tools, stored images and reasoning items, which this gateway refuses or never returns.
LOGPROBS = "message.output_text.logprobs"
Includable = Literal[
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "message.input_image.image_url",
    "computer_call_output.output.image_url",
    "code_interpreter_call.outputs",
    "reasoning.encrypted_content",
    "message.output_text.logprobs",
]

# OpenAI's floor for `max_output_tokens` (its code `integer_below_min_value`); llama-server takes less, so the same
# body was answered or refused depending on where it was routed.
MIN_OUTPUT_TOKENS = 16


class ResponsesRequest(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)  # kept for repeated bodies (gateway/body_memo.py)
    model: str = Field(min_length=1)
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    max_output_tokens: int | None = Field(default=None, strict=True, json_schema_extra={"minimum": MIN_OUTPUT_TOKENS})
    temperature: float | None = Field(default=None, strict=True, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, strict=True, ge=0.0, le=1.0)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: StrictBool | None = None
    text: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    top_logprobs: int | None = Field(default=None, strict=True, ge=0, le=20)
    include: list[Includable] | None = None
    stream: StrictBool = False  # strict, as OpenAI: not "yes" or 1
    # Declared to be refused by name (`to_chat`); the schema says only what is accepted.
    previous_response_id: Annotated[str | None, refused_unless("the gateway stores no responses")] = None
    conversation: Annotated[str | dict[str, Any] | None, refused_unless("the gateway stores no conversations")] = None
    background: Annotated[StrictBool | None, refused_unless("background runs are not supported", False)] = None
    user: str | None = None
    safety_identifier: str | None = None

    @field_validator("max_output_tokens")
    @classmethod
    def _output_floor(cls, v: int | None) -> int | None:
        if v is not None and v < MIN_OUTPUT_TOKENS:
            why = f"integer below minimum value; expected a value >= {MIN_OUTPUT_TOKENS}, got {v}"
            raise PydanticCustomError("greater_than_equal", why, {"code": "integer_below_min_value"})
        return v

    @model_validator(mode="after")
    def _ints_fit(self) -> Self:
        ints_fit(self)  # also what the answer echoes (`metadata`), written after the upstream call
        chat_rules.check_metadata((self.model_extra or {}).get("metadata"))
        return self


def _unsupported(param: str, what: str) -> InvalidRequest:
    return InvalidRequest(f"{what} is not supported by this gateway.", param, "unsupported_parameter")


def _invalid(param: str, what: str) -> InvalidRequest:
    return InvalidRequest(f"Invalid value for '{param}': {what}.", param, "invalid_value")


def _field(d: dict[str, Any], name: str, where: str, kind: type, default: Any = None) -> Any:
    """`d[name]` if it is a `kind` (or absent with a default); else the client's 400 naming it, not our 500."""
    v = d.get(name, default)
    if not isinstance(v, kind):
        raise _invalid(f"{where}.{name}", f"expected {'a string' if kind is str else 'an object'}")
    return v


def _content(parts: Any, where: str) -> str | list[dict[str, Any]]:
    if isinstance(parts, str):
        return parts
    if not isinstance(parts, list):
        raise _invalid(f"{where}.content", "expected a string or a list of content parts")
    out: list[dict[str, Any]] = []
    for i, p in enumerate(parts):
        at = f"{where}.content.{i}"
        if not isinstance(p, dict):
            raise _invalid(at, "expected a content part object")
        kind = p.get("type")
        if not isinstance(kind, str):  # said as such, not as "content of type 'None'"
            raise _invalid(f"{at}.type", "expected the part's type (a string such as 'input_text')")
        if kind in ("input_text", "output_text", "text"):
            out.append({"type": "text", "text": _field(p, "text", at, str)})
        elif kind == "input_image" and isinstance(p.get("image_url"), str):
            out.append({"type": "image_url", "image_url": {"url": p["image_url"], "detail": p.get("detail", "auto")}})
        elif kind == "input_file" and isinstance(p.get("file_data") or p.get("file_id"), str):
            # Chat's `file` part; routed only to models declaring `files` (router/select.py).
            out.append({"type": "file", "file": {k: p[k] for k in ("file_data", "file_id", "filename") if k in p}})
        elif kind == "input_audio" and isinstance(p.get("input_audio"), dict):
            out.append({"type": "input_audio", "input_audio": p["input_audio"]})  # the same shape in both APIs
        else:
            lacking = {
                "input_image": "an image_url",
                "input_file": "file_data or a file_id",
                "input_audio": "input_audio",
            }
            raise _unsupported(
                at, f"Content of type '{kind}'" + (f" without {lacking[kind]}" if kind in lacking else "")
            )
    return out


def _messages(req: ResponsesRequest) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = []
    if req.instructions:
        msgs.append({"role": "system", "content": req.instructions})
    if isinstance(req.input, str):
        return [*msgs, {"role": "user", "content": req.input}]
    for i, item in enumerate(req.input):
        kind, where = item.get("type", "message"), f"input.{i}"
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "system", "developer", "assistant"):
                raise _invalid(f"{where}.role", f"{role!r} is not one of user, system, developer, assistant")
            msgs.append({"role": role, "content": _content(item.get("content"), where)})
        elif kind == "function_call":
            fn = {"name": _field(item, "name", where, str), "arguments": _field(item, "arguments", where, str, "")}
            call = {"id": _field(item, "call_id", where, str), "type": "function", "function": fn}
            last = msgs[-1] if msgs else None
            if last is not None and last["role"] == "assistant" and last.get("tool_calls") and not last["content"]:
                last["tool_calls"].append(call)  # parallel calls are one assistant turn in chat
            else:
                msgs.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            call_id = _field(item, "call_id", where, str)
            msgs.append({"role": "tool", "tool_call_id": call_id, "content": _content(item.get("output"), where)})
        elif kind == "reasoning":
            continue  # a model's own earlier reasoning: nothing in chat carries it back
        else:
            raise _unsupported(where, f"An input item of type '{kind}'")
    return msgs


def _tools(req: ResponsesRequest) -> list[dict[str, Any]] | None:
    if req.tools is None:
        return None
    out = []
    for i, t in enumerate(req.tools):
        if t.get("type") != "function":
            raise _unsupported(f"tools.{i}", f"The built-in tool '{t.get('type')}'")
        _field(t, "name", f"tools.{i}", str)
        fn = {k: t[k] for k in ("name", "description", "parameters", "strict") if k in t}
        out.append({"type": "function", "function": fn})
    return out


def _tool_choice(choice: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": _field(choice, "name", "tool_choice", str)}}
    if isinstance(choice, dict):
        raise _unsupported("tool_choice", f"tool_choice of type '{choice.get('type')}'")
    return choice


def _response_format(text: dict[str, Any] | None) -> dict[str, Any] | None:
    fmt = _field(text or {}, "format", "text", dict, {})
    if not fmt or fmt.get("type") == "text":
        return None
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") == "json_schema":
        _field(fmt, "name", "text.format", str)
        _field(fmt, "schema", "text.format", dict)
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": schema}
    raise _unsupported("text.format", f"text.format of type '{fmt.get('type')}'")


def to_chat(req: ResponsesRequest) -> dict[str, Any]:
    """The chat completion request body that asks the same; raises InvalidRequest for what chat cannot carry."""
    if req.previous_response_id is not None:
        raise _unsupported("previous_response_id", "Continuing a stored response (the gateway stores none)")
    if req.conversation is not None:
        raise _unsupported("conversation", "A stored conversation (the gateway stores none)")
    if req.background:
        raise _unsupported("background", "A background response")
    extra = sorted(set(req.model_extra or {}) - IGNORED)
    if extra:
        raise _unsupported(extra[0], f"The parameter '{extra[0]}'")
    messages = _messages(req)
    if not any(m["role"] != "system" for m in messages):
        raise InvalidRequest("'input' must hold at least one item to answer.", "input", "invalid_value")
    body: dict[str, Any] = {"model": req.model, "messages": messages, "stream": req.stream}
    if req.stream:
        body["stream_options"] = {"include_usage": True}  # a Response reports usage in its last event
    tools = _tools(req)
    optional = {
        "max_tokens": req.max_output_tokens,
        "temperature": req.temperature,
        "top_p": req.top_p,
        "tools": tools,
        "tool_choice": _tool_choice(req.tool_choice),
        # Chat refuses it without tools (gateway/chat_rules.py); a Response takes it alone, and echoes it.
        "parallel_tool_calls": req.parallel_tool_calls if tools else None,
        "response_format": _response_format(req.text),
        "reasoning_effort": _field(req.reasoning or {}, "effort", "reasoning", str, "") or None,
        # Asked for only when `include` wants them: without it OpenAI answers `logprobs: []` whatever top_logprobs says.
        "logprobs": True if wants_logprobs(req) else None,
        "top_logprobs": (req.top_logprobs or None) if wants_logprobs(req) else None,  # 0: chat's default, none
        "user": req.safety_identifier or req.user,  # chat's `user`: the ledger's end user, and the upstream's
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    return body


def wants_logprobs(req: ResponsesRequest) -> bool:
    return LOGPROBS in (req.include or ())


def _logprobs(choice: dict[str, Any]) -> list[dict[str, Any]]:
    """A chat choice's token log-probabilities (whole answer or one chunk's) as the Responses API lays them out; []
    when it has none, as OpenAI answers when `include` does not ask for them."""
    out = []
    for t in (choice.get("logprobs") or {}).get("content") or []:
        top = [
            {"token": x.get("token", ""), "bytes": x.get("bytes") or [], "logprob": x.get("logprob", 0.0)}
            for x in t.get("top_logprobs") or []
        ]
        out.append(
            {
                "token": t.get("token", ""),
                "bytes": t.get("bytes") or [],
                "logprob": t.get("logprob", 0.0),
                "top_logprobs": top,
            }
        )
    return out


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _usage(u: dict[str, Any] | None) -> dict[str, Any] | None:
    if not u:
        return None
    cached = ((u.get("prompt_tokens_details") or {}).get("cached_tokens")) or 0
    reasoning = ((u.get("completion_tokens_details") or {}).get("reasoning_tokens")) or 0
    return {
        "input_tokens": u.get("prompt_tokens", 0),
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": u.get("completion_tokens", 0),
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": u.get("total_tokens", u.get("prompt_tokens", 0) + u.get("completion_tokens", 0)),
    }


def _shell(req: ResponsesRequest, rid: str, model: str, status: str, created: float | None = None) -> dict[str, Any]:
    """A Response object's fields other than its output and usage, echoing the request as OpenAI does."""
    return {
        "id": rid,
        "object": "response",
        "created_at": int(created or time.time()),
        "status": status,
        "model": model,
        "output": [],
        "usage": None,
        "error": None,
        "incomplete_details": None,
        "instructions": req.instructions,
        "max_output_tokens": req.max_output_tokens,
        "temperature": req.temperature,
        "top_p": req.top_p,
        "tools": req.tools or [],
        "tool_choice": req.tool_choice or "auto",
        "parallel_tool_calls": True if req.parallel_tool_calls is None else req.parallel_tool_calls,
        "text": req.text or {"format": {"type": "text"}},
        "reasoning": req.reasoning,
        "previous_response_id": None,
        "store": False,
        "metadata": (req.model_extra or {}).get("metadata") or {},
    }


def _message_item(text: str, status: str = "completed", logprobs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs or []}
    return {"type": "message", "id": _id("msg"), "status": status, "role": "assistant", "content": [part]}


def _call_item(call: dict[str, Any], status: str = "completed") -> dict[str, Any]:
    fn = call.get("function") or {}
    return {
        "type": "function_call",
        "id": _id("fc"),
        "call_id": call.get("id") or _id("call"),
        "name": fn.get("name", ""),
        "arguments": fn.get("arguments") or "",
        "status": status,
    }


def _ending(finish_reason: str | None) -> tuple[str, dict[str, Any] | None]:
    """The response's status and `incomplete_details` for a chat answer's finish reason. Where it is incomplete, so
    is its last output item, the one the cut fell in, as OpenAI marks it; the items before it are whole."""
    if finish_reason == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish_reason == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def from_chat(req: ResponsesRequest, chat: dict[str, Any]) -> dict[str, Any]:
    """The Response object for a chat completion answer (its first choice)."""
    choice = (chat.get("choices") or [{}])[0]
    msg = choice.get("message") or {}
    status, incomplete = _ending(choice.get("finish_reason"))
    out = _shell(req, _id("resp"), str(chat.get("model", req.model)), status, chat.get("created"))
    if msg.get("content"):
        out["output"].append(_message_item(str(msg["content"]), logprobs=_logprobs(choice)))
    out["output"].extend(_call_item(c) for c in msg.get("tool_calls") or [])
    if status == "incomplete" and out["output"]:
        out["output"][-1]["status"] = "incomplete"
    out["usage"], out["incomplete_details"] = _usage(chat.get("usage")), incomplete
    return out


class _Events:
    """Numbers the events of one stream (the API's `sequence_number`)."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, kind: str, **fields: Any) -> dict[str, Any]:
        self.n += 1
        return {"type": kind, "sequence_number": self.n - 1, **fields}


Phase = Literal["text", "call"]


async def stream_events(
    req: ResponsesRequest, chunks: AsyncIterator[dict[str, Any]], model: str
) -> AsyncIterator[dict[str, Any]]:
    """The Responses API's events for a chat completion stream: the response's start, each output item (text, or a
    function call) opened, filled by deltas and closed, then response.completed with usage (or an error event and
    response.failed if the stream broke)."""
    ev = _Events()
    resp = _shell(req, _id("resp"), model, "in_progress")
    yield ev("response.created", response=dict(resp))
    yield ev("response.in_progress", response=dict(resp))
    items: list[dict[str, Any]] = []  # closed items, in order
    text_item: dict[str, Any] | None = None
    calls: dict[int, dict[str, Any]] = {}  # open function calls by their chat tool-call index
    finish: str | None = None
    usage: dict[str, Any] | None = None

    def close_text(status: str = "completed") -> list[dict[str, Any]]:
        nonlocal text_item
        if text_item is None:
            return []
        item, text_item = text_item, None
        idx = len(items)
        part = item["content"][0]
        item["status"] = status
        items.append(item)
        at = {"item_id": item["id"], "output_index": idx, "content_index": 0}
        return [
            ev("response.output_text.done", **at, text=part["text"], logprobs=part["logprobs"]),
            ev("response.content_part.done", **at, part=part),
            ev("response.output_item.done", output_index=idx, item=item),
        ]

    def close_calls(status: str = "completed") -> list[dict[str, Any]]:
        """`status` is the last call's (the one being streamed); the calls before it are whole."""
        out = []
        for i in sorted(calls):
            item = calls.pop(i)
            idx = len(items)
            item["status"] = status if not calls else "completed"
            items.append(item)
            at = {"item_id": item["id"], "output_index": idx}
            out.append(ev("response.function_call_arguments.done", **at, arguments=item["arguments"]))
            out.append(ev("response.output_item.done", output_index=idx, item=item))
        return out

    async for chunk in chunks:
        if "error" in chunk:
            for e in close_text("incomplete") + close_calls("incomplete"):  # cut short by the break
                yield e
            err = chunk["error"]
            yield ev("error", code=err.get("code"), message=err.get("message"), param=err.get("param"))
            resp.update(status="failed", output=items, error={"code": err.get("code"), "message": err.get("message")})
            yield ev("response.failed", response=resp)
            return
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            finish = choice.get("finish_reason") or finish
            if delta.get("content"):
                if text_item is None:
                    for e in close_calls():
                        yield e
                    text_item = _message_item("", status="in_progress")
                    idx = len(items)
                    part = text_item["content"][0]
                    opened = {**text_item, "content": []}
                    yield ev("response.output_item.added", output_index=idx, item=opened)
                    yield ev(
                        "response.content_part.added",
                        item_id=text_item["id"],
                        output_index=idx,
                        content_index=0,
                        part={**part, "text": "", "logprobs": []},  # its own list: the item's grows as deltas come
                    )
                text_item["content"][0]["text"] += delta["content"]
                logprobs = _logprobs(choice)
                text_item["content"][0]["logprobs"].extend(logprobs)
                yield ev(
                    "response.output_text.delta",
                    item_id=text_item["id"],
                    output_index=len(items),
                    content_index=0,
                    delta=delta["content"],
                    logprobs=logprobs,
                )
            for tc in delta.get("tool_calls") or []:
                i = int(tc.get("index", 0))
                if i not in calls:
                    for e in close_text():
                        yield e
                    calls[i] = _call_item({"id": tc.get("id"), "function": tc.get("function") or {}}, "in_progress")
                    calls[i]["arguments"] = ""
                    added = dict(calls[i])
                    yield ev("response.output_item.added", output_index=len(items) + len(calls) - 1, item=added)
                piece = (tc.get("function") or {}).get("arguments") or ""
                if piece:
                    calls[i]["arguments"] += piece
                    idx = len(items) + sorted(calls).index(i)
                    yield ev(
                        "response.function_call_arguments.delta", item_id=calls[i]["id"], output_index=idx, delta=piece
                    )
    status, incomplete = _ending(finish)
    for e in close_text(status) + close_calls(status):  # at most one kind is open: each closes the other
        yield e
    resp.update(status=status, output=items, usage=_usage(usage), incomplete_details=incomplete)
    yield ev(f"response.{'completed' if status == 'completed' else 'incomplete'}", response=resp)
