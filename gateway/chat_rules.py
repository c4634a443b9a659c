"""What OpenAI's API refuses in a chat request but a model's server may accept, checked when the body is parsed.

llama-server takes a tool message without `tool_call_id`, a `logit_bias` of 500, a `tool_choice` naming a function
that is not among the tools, a tool with no `function`, a tool-call history with unanswered calls or stray tool
messages, and empty `content`, `tool_calls` or `tools` arrays; OpenAI answers each with a 400. Checked here, a client
gets the same 400 wherever the router would have sent its request, before anything is classified or paid for,
instead of an answer from the local model and a rejection from the hosted one for the same body.

Messages whose parts are of the wrong shape (a `name` that is a number, a text part without `text`, a tool call
that is not an object, an image in a system message) are worse: llama-server answers them with a 500 ("Failed to
parse messages: ..."), which reads as the model failing, so a few such requests put the local model in cooldown
(gateway/cooldown.py) for every client. OpenAI refuses each with a 400; so does the gateway now.

Each failure is a pydantic error whose `ctx.param` names the field, and `ctx.code` OpenAI's code where it has its
own (gateway/errors.py: from_validation).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic_core import PydanticCustomError

from gateway import schema_rules

if TYPE_CHECKING:
    from gateway.protocol import ChatCompletionRequest, ChatMessage

TOOL_CHOICES = ("none", "auto", "required")
LOGIT_BIAS_BOUND = 100.0  # OpenAI's: -100 bans a token, 100 forces it
MAX_STOPS = 4  # OpenAI's bound on `stop` sequences; llama-server takes any number
MAX_TOOLS = 128  # OpenAI's bound on `tools` (and the deprecated `functions`); llama-server takes any number
MAX_METADATA_PAIRS, MAX_METADATA_KEY, MAX_METADATA_VALUE = 16, 64, 512  # OpenAI's bounds on `metadata`
# OpenAI's (and Anthropic's) rule for a function's name, in `tools` and in the calls of a history; local servers take
# any name, so a tool named "web search" or "fs.read" was served by one route and a 400 from another.
_FUNCTION_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def _refuse(kind: str, message: str, param: str, code: str | None = None) -> PydanticCustomError:
    return PydanticCustomError(kind, message, {"param": param, "code": code} if code else {"param": param})


def _empty(param: str) -> PydanticCustomError:
    return _refuse("too_short", "empty array; expected at least one item (or leave the key out)", param, "empty_array")


def check(req: ChatCompletionRequest) -> None:
    """Raises the first rule `req` breaks, naming where; returns when it breaks none."""
    tooling = False  # any tool message or tool call: only then is the history's order checked
    for i, m in enumerate(req.messages):
        extra = m.__pydantic_extra__ or {}
        tooling = tooling or m.role == "tool" or "tool_calls" in extra
        if m.role == "tool" and not isinstance(extra.get("tool_call_id"), str):
            raise _refuse(
                "missing",
                "a tool message needs `tool_call_id`, the id of the tool call it answers",
                f"messages.{i}.tool_call_id",
            )
        if extra:
            _check_message_fields(extra, f"messages.{i}")
        if type(m.content) is list:
            if not m.content:
                raise _empty(f"messages.{i}.content")
            _check_parts(m.role, m.content, f"messages.{i}.content")
        elif (
            m.content is None and m.role == "assistant" and not (extra.get("tool_calls") or extra.get("function_call"))
        ):
            raise _refuse(
                "missing",
                "an assistant message needs `content` unless it carries `tool_calls`",
                f"messages.{i}.content",
            )
    if tooling:
        _check_tool_turns(req.messages)
    for i, fn in enumerate(req.functions or ()):  # the deprecated form of `tools`, under the same rule
        if isinstance(fn.get("name"), str):
            _check_name(fn["name"], f"functions.{i}.name")
    if isinstance(req.stop, list) and len(req.stop) > MAX_STOPS:
        message = f"array too long; expected at most {MAX_STOPS} stop sequences, got {len(req.stop)}"
        raise _refuse("too_long", message, "stop", "array_above_max_length")
    if req.tools is not None and not req.tools:
        raise _empty("tools")  # OpenAI's answer to `tools: []`; leave the key out to send no tools
    for field, listed in (("tools", req.tools), ("functions", req.functions)):
        if listed is not None and len(listed) > MAX_TOOLS:
            message = f"array too long; expected at most {MAX_TOOLS} {field}, got {len(listed)}"
            raise _refuse("too_long", message, field, "array_above_max_length")
    if req.top_logprobs is not None and req.logprobs is not True:
        # OpenAI's documented rule; llama-server refuses it too, but only after the request was classified.
        raise _refuse("invalid_value", "`top_logprobs` needs `logprobs: true`", "top_logprobs")
    if req.logit_bias:
        _check_logit_bias(req.logit_bias)
    names = _tool_names(req.tools) if req.tools is not None else None
    if req.tool_choice is not None:
        _check_tool_choice(req.tool_choice, names)
    _check_companions(req)
    if req.response_format is not None:
        _check_response_format(req.response_format)
    if req.model_extra and "metadata" in req.model_extra:
        check_metadata(req.model_extra["metadata"])
    if req.response_format or req.tools or req.model_extra:
        _check_schemas(req)


def _check_companions(req: ChatCompletionRequest) -> None:
    """Parameters OpenAI takes only beside another, in its words; llama-server ignores them alone (and some clients
    send them always: such a body got an answer from the local model and a 400 from a hosted one)."""
    if req.stream_options is not None and not req.stream:
        raise _refuse(
            "invalid_value", "the 'stream_options' parameter is only allowed when 'stream' is enabled", "stream_options"
        )
    if req.parallel_tool_calls is not None and not req.tools:
        raise _refuse(
            "invalid_value", "'parallel_tool_calls' is only allowed when 'tools' are specified", "parallel_tool_calls"
        )


def _check_response_format(fmt: dict[str, Any]) -> None:
    """What every backend needs of `response_format`: its `type`, and for "json_schema" the schema's object with a
    `name` (OpenAI's pattern, as a function's). llama-server takes `{}` or a "json_schema" with no schema as free
    text, where OpenAI answers 400. A type this does not know passes on: newer ones are the model's server's to
    judge (llama-server refuses them with a 400 of its own)."""
    kind = fmt.get("type")
    if not isinstance(kind, str):
        raise _refuse("missing", "expected a string: 'text', 'json_object' or 'json_schema'", "response_format.type")
    if kind != "json_schema":
        return
    spec = fmt.get("json_schema")
    if not isinstance(spec, dict):
        raise _refuse(
            "missing", "expected an object with the schema's `name` and `schema`", "response_format.json_schema"
        )
    name = spec.get("name")
    if not isinstance(name, str):
        raise _refuse("missing", "expected a string", "response_format.json_schema.name")
    _check_name(name, "response_format.json_schema.name", "a schema's")
    if "schema" in spec and not isinstance(spec["schema"], dict):
        raise _refuse("invalid_value", "expected an object (a JSON Schema)", "response_format.json_schema.schema")
    if "strict" in spec and spec["strict"] is not None and not isinstance(spec["strict"], bool):
        raise _refuse("invalid_value", "expected a boolean", "response_format.json_schema.strict")


def check_metadata(metadata: Any, where: str = "metadata") -> None:
    """OpenAI's bounds on `metadata` (chat and Responses alike): at most 16 pairs, keys of at most 64 characters,
    values strings of at most 512. Passed on to the model's server, which may ignore it (llama-server does) or
    refuse it (OpenAI does), so checked here for one answer wherever the request goes."""
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise _refuse("invalid_value", "expected an object of string keys and string values", where)
    if len(metadata) > MAX_METADATA_PAIRS:
        why = f"too many properties; expected at most {MAX_METADATA_PAIRS}, got {len(metadata)}"
        raise _refuse("too_long", why, where, "object_above_max_properties")
    for key, value in metadata.items():
        if len(key) > MAX_METADATA_KEY:
            why = f"a key is at most {MAX_METADATA_KEY} characters, not {len(key)}"
            raise _refuse("too_long", why, where, "string_above_max_length")
        at = f"{where}.{key}"
        if not isinstance(value, str):
            raise _refuse("invalid_value", "expected a string", at)
        if len(value) > MAX_METADATA_VALUE:
            why = f"string too long; expected at most {MAX_METADATA_VALUE} characters, got {len(value)}"
            raise _refuse("too_long", why, at, "string_above_max_length")


def _check_schemas(req: ChatCompletionRequest) -> None:
    """Schemas and grammars, wherever a model's server may compile them (gateway/schema_rules.py says why)."""
    extra = req.model_extra or {}
    if extra.get("grammar") is not None and extra.get("json_schema") is not None:
        # Two constraints on one answer: llama-server answers "Cannot use both json_schema and grammar" with a 500,
        # which reads as the model failing.
        raise _refuse("invalid_value", "`grammar` and `json_schema` each constrain the answer; send one", "grammar")
    try:
        if req.response_format:
            schema_rules.check_schema(req.response_format, "response_format")
        if req.tools:
            schema_rules.check_schema(req.tools, "tools")
        if "json_schema" in extra:  # llama.cpp's own parameters
            schema_rules.check_schema(extra["json_schema"], "json_schema")
        if isinstance(grammar := extra.get("grammar"), str):
            schema_rules.check_grammar(grammar, "grammar")
    except schema_rules.Inverted as e:
        raise _refuse("invalid_value", str(e), e.param) from None


# Content parts by role, as OpenAI takes them; a user's part of a newer type passes to the model's server.
_PART_FIELD = {
    "text": "text",
    "image_url": "image_url",
    "input_audio": "input_audio",
    "file": "file",
    "refusal": "refusal",
}
KNOWN_PARTS = frozenset(_PART_FIELD)  # other types pass on unchecked (gateway/protocol.py: carries_unchecked)
_PARTS_OF = {
    "system": ("text",),
    "developer": ("text",),
    "tool": ("text",),
    "assistant": ("text", "refusal"),
}


def _check_message_fields(extra: dict[str, Any], where: str) -> None:
    for field in ("name", "tool_call_id"):
        if field in extra and extra[field] is not None and not isinstance(extra[field], str):
            raise _refuse("string_type", "expected a string", f"{where}.{field}")
    calls = extra.get("tool_calls")
    if calls is None:
        return
    if not isinstance(calls, list):
        raise _refuse("list_type", "expected an array of tool calls", f"{where}.tool_calls")
    if not calls:
        raise _empty(f"{where}.tool_calls")
    for j, call in enumerate(calls):
        at = f"{where}.tool_calls.{j}"
        if not isinstance(call, dict):
            raise _refuse("dict_type", "a tool call is an object with `id`, `type` and `function`", at)
        for field in ("id", "type"):
            if not isinstance(call.get(field), str):
                raise _refuse("missing", "expected a string", f"{at}.{field}")
        if call["type"] != "function":
            continue
        fn = call.get("function")
        if not isinstance(fn, dict):
            raise _refuse("missing", "a function call needs `function`: its `name` and `arguments`", f"{at}.function")
        for field in ("name", "arguments"):
            if not isinstance(fn.get(field), str):
                why = "the arguments as a JSON string" if field == "arguments" else "a string"
                raise _refuse("missing", f"expected {why}", f"{at}.function.{field}")
        if not fn["name"]:
            raise _refuse("too_short", "empty string; a function call names its function", f"{at}.function.name")
        _check_name(fn["name"], f"{at}.function.name")


def _check_name(name: str, param: str, whose: str = "a function's") -> None:
    """OpenAI's one pattern for the names of functions and of JSON schemas (`response_format`)."""
    if not _FUNCTION_NAME.fullmatch(name):
        why = f"{whose} name is 1 to 64 letters (a-z, A-Z), digits, underscores or dashes"
        raise _refuse("invalid_value", f"{why}, not {name[:80]!r}", param)


def _check_tool_turns(messages: Sequence[ChatMessage]) -> None:
    """As OpenAI (and every provider with tools): an assistant turn's tool calls are answered, each by a tool message
    naming its id, in the messages right after it, and a tool message answers a call of that turn. llama-server
    takes a broken history and answers it as best it can, so the same body got an answer from the local model and a
    400 from a hosted one."""
    open_at, ids, waiting = -1, set[str](), set[str]()  # the turn being answered, its call ids, those unanswered
    for i, m in enumerate(messages):
        if m.role == "tool":
            if open_at < 0:
                raise _refuse(
                    "invalid_value",
                    "a tool message must answer a tool call of the nearest assistant message before it, with only"
                    " tool messages between them",
                    f"messages.{i}.role",
                )
            call_id = (m.__pydantic_extra__ or {}).get("tool_call_id")
            if call_id not in ids:
                raise _refuse(
                    "invalid_value",
                    f"{call_id!r} is not among the `tool_calls` ids of messages.{open_at}",
                    f"messages.{i}.tool_call_id",
                )
            waiting.discard(call_id)
            continue
        if waiting:
            break
        calls = (m.__pydantic_extra__ or {}).get("tool_calls") if m.role == "assistant" else None
        ids = {c["id"] for c in calls} if calls else set()
        open_at, waiting = (i if calls else -1), set(ids)
    if waiting:
        raise _refuse(
            "invalid_value",
            "an assistant message with `tool_calls` must be followed by a tool message answering each call; none"
            f" answers {', '.join(map(repr, sorted(waiting)))}",
            f"messages.{open_at}.tool_calls",
        )


def _check_parts(role: str, parts: list[dict[str, Any]], where: str) -> None:
    allowed = _PARTS_OF.get(role)
    for j, part in enumerate(parts):
        kind = part.get("type")
        if not isinstance(kind, str):
            raise _refuse("missing", "each content part needs a `type`, such as 'text'", f"{where}.{j}.type")
        if allowed is not None and kind not in allowed:
            raise _refuse(
                "invalid_value",
                f"a {role} message takes parts of type {' or '.join(allowed)}, not {kind!r}",
                f"{where}.{j}.type",
            )
        field = _PART_FIELD.get(kind)
        if field is None:
            continue
        value = part.get(field)
        if kind in ("text", "refusal"):
            if not isinstance(value, str):
                raise _refuse("missing", "expected a string", f"{where}.{j}.{field}")
        elif not isinstance(value, dict):
            raise _refuse("missing", "expected an object", f"{where}.{j}.{field}")
        elif kind == "image_url" and not isinstance(value.get("url"), str):
            raise _refuse("missing", "an image needs its `url` (https: or data:)", f"{where}.{j}.image_url.url")
        elif kind == "input_audio" and not (
            isinstance(value.get("data"), str) and isinstance(value.get("format"), str)
        ):
            raise _refuse("missing", "audio needs `data` (base64) and `format`", f"{where}.{j}.input_audio")


def _check_logit_bias(bias: dict[str, float]) -> None:
    for token, value in bias.items():
        if not token.isdecimal():  # isdecimal: ASCII digits and other decimal digits; int() takes both
            raise _refuse("invalid_key", f"keys are token ids (integers), not {token!r}", "logit_bias")
        if not -LOGIT_BIAS_BOUND <= value <= LOGIT_BIAS_BOUND:
            raise _refuse("out_of_range", "a bias must lie between -100 and 100", f"logit_bias.{token}")


def _tool_names(tools: list[dict[str, Any]]) -> set[str]:
    """The functions' names; other kinds of tool (`custom`, newer ones) pass as the client sent them."""
    names: set[str] = set()
    for i, tool in enumerate(tools):
        kind = tool.get("type")
        if not isinstance(kind, str):
            raise _refuse("missing", "each tool needs a `type`, such as 'function'", f"tools.{i}.type")
        if kind != "function":
            continue
        fn = tool.get("function")
        if not isinstance(fn, dict):
            raise _refuse(
                "missing", "a function tool needs `function`, an object with its `name`", f"tools.{i}.function"
            )
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            raise _refuse("missing", "a function needs a `name` (a non-empty string)", f"tools.{i}.function.name")
        _check_name(name, f"tools.{i}.function.name")
        names.add(name)
    return names


def _check_tool_choice(choice: str | dict[str, Any], names: set[str] | None) -> None:
    if isinstance(choice, str):
        if choice not in TOOL_CHOICES:
            raise _refuse("invalid_value", f"expected one of {', '.join(TOOL_CHOICES)}, or an object", "tool_choice")
        if choice == "required" and not names:
            raise _refuse("invalid_value", "'required' needs at least one function in `tools`", "tool_choice")
        return
    if choice.get("type") != "function":
        return  # `allowed_tools`, `custom` and newer forms: the model's server judges them
    fn = choice.get("function")
    name = fn.get("name") if isinstance(fn, dict) else None
    if not isinstance(name, str):
        raise _refuse("missing", "a function tool choice needs `function.name`", "tool_choice.function.name")
    if names is None or name not in names:
        raise _refuse("invalid_value", f"the function {name!r} is not among `tools`", "tool_choice.function.name")
