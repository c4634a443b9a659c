"""The chat request's bounds on integers: what orjson can write passes, anything past it is refused naming where."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from gateway.errors import from_validation
from gateway.protocol import ChatCompletionRequest

USER = [{"role": "user", "content": "x"}]


@pytest.mark.parametrize("n", [-(2**63), 2**64 - 1, True, 1.0e300])
def test_numbers_orjson_writes_pass(n: Any) -> None:
    req = ChatCompletionRequest.model_validate({"model": "m", "messages": USER, "top_k": n, "x": [{"y": n}]})
    assert req.extras() == {"top_k": n, "x": [{"y": n}]}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"top_k": 2**64}, "top_k"),
        ({"x": [{"y": -(2**63) - 1}]}, "x.0.y"),
        (
            {"messages": [*USER, {"role": "assistant", "content": None, "tool_calls": [{"index": 2**70}]}]},
            "messages.1.tool_calls.0.index",
        ),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"schema": {"maxItems": 2**65}}}},
            "response_format.json_schema.schema.maxItems",
        ),
        ({"tool_choice": {"type": "function", "n": 2**65}}, "tool_choice.n"),
        ({"max_completion_tokens": 2**64}, "max_completion_tokens"),
        # Found by tests/unit/test_parse_fuzz.py: a 500 when the cache key was written.
        ({"audio": {"voice": -(2**63) - 1, "format": "wav"}}, "audio.voice"),
        ({"stream": True, "stream_options": {"include_usage": True, "x": 2**64}}, "stream_options.x"),
    ],
)
def test_an_integer_past_64_bits_is_refused_naming_it(body: dict[str, Any], param: str) -> None:
    with pytest.raises(ValidationError) as e:
        ChatCompletionRequest.model_validate({"model": "m", "messages": USER, **body})
    err = from_validation([dict(x) for x in e.value.errors()])
    assert (err.status, err.param, err.code) == (400, param, "invalid_value")


@pytest.mark.parametrize(
    ("body", "param", "says"),
    [
        ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content", "expected a string or an array"),
        ({"messages": [{"role": "user", "content": [5]}]}, "messages.0.content.0", "valid dictionary"),
        ({"stop": ["a", 5]}, "stop.1", "expected a string, but got an integer"),
        ({"tool_choice": 5}, "tool_choice", "expected a string or an object"),
        (
            {"logit_bias": {"str": "x"}},
            "logit_bias.str",
            "expected a number, but got a string",
        ),  # a key that looks like a union's member
    ],
)
def test_a_union_that_fails_is_named_as_the_client_wrote_it(body: dict[str, Any], param: str, says: str) -> None:
    """Not pydantic's `content.str`: the field, and either what it may be or the error inside the shape it has."""
    with pytest.raises(ValidationError) as e:
        ChatCompletionRequest.model_validate({"model": "m", "messages": USER, **body})
    err = from_validation([dict(x) for x in e.value.errors()])
    assert err.param == param and says in err.message


TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


def _calls(*ids: str) -> dict[str, Any]:
    """An assistant turn calling `f` once per id."""
    fn = {"name": "f", "arguments": "{}"}
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": i, "type": "function", "function": fn} for i in ids],
    }


def _answer(call_id: str) -> dict[str, Any]:
    return {"role": "tool", "content": "42", "tool_call_id": call_id}


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        # A broken tool-call history: llama-server answers each (it 400s only on unanswered calls last), OpenAI 400s.
        ({"messages": [*USER, _answer("a")]}, "messages.1.role", "invalid_value"),
        ({"messages": [*USER, _calls("a"), *USER, _answer("a")]}, "messages.1.tool_calls", "invalid_value"),
        ({"messages": [*USER, _calls("a"), _answer("b")]}, "messages.2.tool_call_id", "invalid_value"),
        ({"messages": [*USER, _calls("a", "b"), _answer("a"), *USER]}, "messages.1.tool_calls", "invalid_value"),
        ({"messages": [*USER, _calls("a")]}, "messages.1.tool_calls", "invalid_value"),
        ({"messages": [*USER, _calls("a"), _answer("a"), *USER, _answer("a")]}, "messages.4.role", "invalid_value"),
        # Empty arrays and strings, as OpenAI names them (code `empty_array`; llama-server takes each).
        ({"messages": [{"role": "user", "content": []}]}, "messages.0.content", "empty_array"),
        (
            {"messages": [*USER, {"role": "assistant", "content": "x", "tool_calls": []}]},
            "messages.1.tool_calls",
            "empty_array",
        ),
        ({"tools": []}, "tools", "empty_array"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "array_above_max_length"),  # OpenAI: "array too long"
        (
            {"tools": [{"type": "function", "function": {"name": f"f{i}"}} for i in range(129)]},
            "tools",
            "array_above_max_length",
        ),
        ({"functions": [{"name": f"f{i}"} for i in range(129)]}, "functions", "array_above_max_length"),
        # A function's name: OpenAI's pattern, "string does not match pattern" (llama-server and vLLM take any).
        (
            {"tools": [{"type": "function", "function": {"name": "web search"}}]},
            "tools.0.function.name",
            "invalid_value",
        ),
        (
            {"tools": [TOOL, {"type": "function", "function": {"name": "f" * 65}}]},
            "tools.1.function.name",
            "invalid_value",
        ),
        ({"functions": [{"name": "fs.read"}]}, "functions.0.name", "invalid_value"),
        (
            {
                "messages": [
                    *USER,
                    {
                        **_calls("a"),
                        "tool_calls": [
                            {"id": "a", "type": "function", "function": {"name": "fs.read", "arguments": "{}"}}
                        ],
                    },
                    _answer("a"),
                ]
            },
            "messages.1.tool_calls.0.function.name",
            "invalid_value",
        ),
        ({"top_logprobs": 2}, "top_logprobs", "invalid_value"),  # llama-server: "requires logprobs to be set to true"
        ({"top_logprobs": 0, "logprobs": False}, "top_logprobs", "invalid_value"),
        (
            {
                "messages": [
                    *USER,
                    {
                        **_calls("a"),
                        "tool_calls": [{"id": "a", "type": "function", "function": {"name": "", "arguments": "{}"}}],
                    },
                    _answer("a"),
                ]
            },
            "messages.1.tool_calls.0.function.name",
            "invalid_value",
        ),
        # An assistant turn with neither content nor tool calls (llama-server: 400 after classification).
        ({"messages": [*USER, {"role": "assistant"}, *USER]}, "messages.1.content", "missing_required_parameter"),
        (
            {"messages": [*USER, {"role": "tool", "content": "42"}]},
            "messages.1.tool_call_id",
            "missing_required_parameter",
        ),
        (
            {"messages": [*USER, {"role": "tool", "content": "42", "tool_call_id": 7}]},
            "messages.1.tool_call_id",
            "missing_required_parameter",
        ),
        ({"logit_bias": {"50256": 500}}, "logit_bias.50256", "invalid_value"),
        ({"logit_bias": {"50256": -100.5}}, "logit_bias.50256", "invalid_value"),
        ({"logit_bias": {"the": 5}}, "logit_bias", "invalid_value"),
        ({"tools": [{"type": "function"}]}, "tools.0.function", "missing_required_parameter"),
        ({"tools": [TOOL, {"function": {"name": "g"}}]}, "tools.1.type", "missing_required_parameter"),
        (
            {"tools": [{"type": "function", "function": {"name": ""}}]},
            "tools.0.function.name",
            "missing_required_parameter",
        ),
        ({"tool_choice": "sometimes", "tools": [TOOL]}, "tool_choice", "invalid_value"),
        ({"tool_choice": "required"}, "tool_choice", "invalid_value"),
        (
            {"tool_choice": {"type": "function", "function": {"name": "g"}}, "tools": [TOOL]},
            "tool_choice.function.name",
            "invalid_value",
        ),
        (
            {"tool_choice": {"type": "function", "function": {"name": "f"}}},
            "tool_choice.function.name",
            "invalid_value",
        ),
        (
            {"tool_choice": {"type": "function"}, "tools": [TOOL]},
            "tool_choice.function.name",
            "missing_required_parameter",
        ),
        ({"stream": "yes"}, "stream", "invalid_type"),
        ({"stream": 1}, "stream", "invalid_type"),
        ({"stream_options": {"include_usage": "true"}}, "stream_options.include_usage", "invalid_type"),
        ({"parallel_tool_calls": "false", "tools": [TOOL]}, "parallel_tool_calls", "invalid_type"),
        # Numbers too: lax mode read `true` as 1 and "0.5" as 0.5, and sent them on; OpenAI refuses each.
        ({"max_tokens": True}, "max_tokens", "invalid_type"),
        ({"max_completion_tokens": "8"}, "max_completion_tokens", "invalid_type"),
        ({"n": 2.0}, "n", "invalid_type"),
        ({"seed": False}, "seed", "invalid_type"),
        ({"temperature": "0.5"}, "temperature", "invalid_type"),
        ({"top_p": True}, "top_p", "invalid_type"),
        ({"presence_penalty": True}, "presence_penalty", "invalid_type"),
        ({"frequency_penalty": "1"}, "frequency_penalty", "invalid_type"),
        ({"logprobs": True, "top_logprobs": True}, "top_logprobs", "invalid_type"),
        ({"logit_bias": {"50256": True}}, "logit_bias.50256", "invalid_type"),
        # Companions OpenAI refuses alone ("only allowed when 'stream' is enabled" / "when 'tools' are specified").
        ({"stream_options": {"include_usage": True}}, "stream_options", "invalid_value"),
        ({"parallel_tool_calls": False}, "parallel_tool_calls", "invalid_value"),
        ({"parallel_tool_calls": True, "functions": [{"name": "f"}]}, "parallel_tool_calls", "invalid_value"),
        # `response_format` without what every backend needs (llama-server answers each as free text).
        ({"response_format": {}}, "response_format.type", "missing_required_parameter"),
        ({"response_format": {"type": 1}}, "response_format.type", "missing_required_parameter"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema", "missing_required_parameter"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object"}}}},
            "response_format.json_schema.name",
            "missing_required_parameter",
        ),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "my schema"}}},
            "response_format.json_schema.name",
            "invalid_value",
        ),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": "object"}}},
            "response_format.json_schema.schema",
            "invalid_value",
        ),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "s", "strict": "yes"}}},
            "response_format.json_schema.strict",
            "invalid_value",
        ),
        # `metadata`: OpenAI's 16 pairs of string keys (64) and string values (512); llama-server ignores it.
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata", "object_above_max_properties"),
        ({"metadata": {"k" * 65: "v"}}, "metadata", "string_above_max_length"),
        ({"metadata": {"k": "v" * 513}}, "metadata.k", "string_above_max_length"),
        ({"metadata": {"k": 1}}, "metadata.k", "invalid_value"),
        ({"metadata": ["k", "v"]}, "metadata", "invalid_value"),
    ],
)
def test_what_openai_refuses_is_refused_here_naming_it(body: dict[str, Any], param: str, code: str) -> None:
    """A model's server (llama-server) accepts each of these; OpenAI answers 400. The gateway answers 400 wherever the
    request would have gone."""
    with pytest.raises(ValidationError) as e:
        ChatCompletionRequest.model_validate({"model": "m", "messages": USER, **body})
    err = from_validation([dict(x) for x in e.value.errors()])
    assert (err.status, err.param, err.code) == (400, param, code), err.message


@pytest.mark.parametrize(
    "body",
    [
        {"messages": [*USER, _calls("a"), _answer("a")]},
        # Parallel calls, answered in any order; the assistant may also speak; then the conversation goes on.
        {"messages": [*USER, {**_calls("a", "b"), "content": "Looking."}, _answer("b"), _answer("a"), *USER]},
        {"messages": [*USER, _calls("a"), _answer("a"), *USER, _calls("c"), _answer("c")]},
        {"messages": [*USER, {"role": "assistant", "content": "Hel"}]},  # an assistant turn last, with content
        {"logit_bias": {"50256": -100, "11": 100.0, "7": 0}},
        {"logprobs": True, "top_logprobs": 3},
        {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "f"}}},
        {"tools": [TOOL], "tool_choice": "required", "parallel_tool_calls": False},
        {"tool_choice": "auto"},  # without tools: some frameworks always send it, and no tool is asked for
        {"tool_choice": "none"},
        {
            "tools": [{"type": "custom", "custom": {"name": "grammar"}}],
            "tool_choice": {"type": "custom", "custom": {"name": "grammar"}},
        },
        {"tools": [TOOL], "tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}}},
        {"stream": True, "stream_options": {"include_usage": False}},
        {"stop": ["a", "b", "c", "d"]},
        {"tools": [{"type": "function", "function": {"name": "get_weather-2"}}], "functions": [{"name": "F" * 64}]},
        {"stop": "a single one"},
        {"stream": False, "stream_options": None},
        {"response_format": {"type": "json_schema", "json_schema": {"name": "s-1", "schema": {}, "strict": True}}},
        {"response_format": {"type": "json_schema", "json_schema": {"name": "s"}}},  # OpenAI: `schema` optional
        {"response_format": {"type": "text"}},
        {"response_format": {"type": "grammar", "grammar": "root ::= x"}},  # newer types: the server's to judge
        {"metadata": {**{f"k{i}": "v" * 512 for i in range(15)}, "k" * 64: ""}},
        {"metadata": None},
    ],
)
def test_what_openai_accepts_passes(body: dict[str, Any]) -> None:
    req = ChatCompletionRequest.model_validate({"model": "m", "messages": USER, **body})
    assert req.tools == body.get("tools") and req.tool_choice == body.get("tool_choice")


IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}


@pytest.mark.parametrize(
    ("message", "param"),
    [
        ({"role": "user", "content": "x", "name": 5}, "messages.1.name"),
        ({"role": "assistant", "content": "x", "tool_calls": {}}, "messages.1.tool_calls"),
        ({"role": "assistant", "content": None, "tool_calls": [[1]]}, "messages.1.tool_calls.0"),
        ({"role": "assistant", "content": None, "tool_calls": [{"type": "function"}]}, "messages.1.tool_calls.0.id"),
        (
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "type": "function", "function": "f"}]},
            "messages.1.tool_calls.0.function",
        ),
        (
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}],
            },
            "messages.1.tool_calls.0.function.arguments",
        ),
        ({"role": "user", "content": [{"text": "x"}]}, "messages.1.content.0.type"),
        ({"role": "user", "content": [{"type": "text", "text": 5}]}, "messages.1.content.0.text"),
        (
            {"role": "user", "content": [{"type": "image_url", "image_url": "https://x"}]},
            "messages.1.content.0.image_url",
        ),
        ({"role": "user", "content": [{"type": "image_url", "image_url": {}}]}, "messages.1.content.0.image_url.url"),
        (
            {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AA=="}}]},
            "messages.1.content.0.input_audio",
        ),
        ({"role": "system", "content": [IMAGE]}, "messages.1.content.0.type"),
        ({"role": "assistant", "content": [IMAGE]}, "messages.1.content.0.type"),
        (
            {"role": "tool", "tool_call_id": "c", "content": [{"type": "refusal", "refusal": "no"}]},
            "messages.1.content.0.type",
        ),
    ],
)
def test_a_message_of_the_wrong_shape_is_refused_naming_where(message: dict[str, Any], param: str) -> None:
    """llama-server fails each of these with a 500, which counted against the local model's health."""
    with pytest.raises(ValidationError) as e:
        ChatCompletionRequest.model_validate({"model": "m", "messages": [*USER, message]})
    err = from_validation([dict(x) for x in e.value.errors()])
    assert (err.status, err.param) == (400, param), err.message


@pytest.mark.parametrize(
    "message",
    [
        {"role": "user", "content": [{"type": "text", "text": "x"}, IMAGE], "name": "ann"},
        {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AA==", "format": "wav"}}]},
        {"role": "user", "content": [{"type": "a_part_from_next_year", "x": 1}]},  # a newer type: the server judges
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}], "name": None},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "d", "type": "custom", "custom": {"name": "g", "input": "x"}},
            ],
        },
        {"role": "system", "content": [{"type": "text", "text": "be brief"}]},
    ],
)
def test_a_message_of_a_shape_openai_takes_passes(message: dict[str, Any]) -> None:
    answers = [_answer(c["id"]) for c in message.get("tool_calls", [])]  # every call answered, as OpenAI wants
    req = ChatCompletionRequest.model_validate({"model": "m", "messages": [*USER, message, *answers]})
    assert req.messages[1].content == message["content"]


AUDIO = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
FILE = {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}}


@pytest.mark.parametrize(
    ("parts", "extra", "wanted"),
    [
        ([AUDIO], {}, {"audio_input"}),
        ([IMAGE, FILE], {}, {"vision", "files"}),
        ([], {"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "wav"}}, {"audio_output"}),
        ([AUDIO], {"modalities": ["audio", "text"]}, {"audio_input", "audio_output"}),
        ([], {"modalities": ["text"]}, set()),
        ([], {}, set()),
    ],
)
def test_content_needs_read_the_parts_and_modalities(
    parts: list[dict[str, Any]], extra: dict[str, Any], wanted: set[str]
) -> None:
    content = [{"type": "text", "text": "what is this?"}, *parts]
    req = ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": content}], **extra}
    )
    kinds = ("vision", "audio_input", "files", "audio_output")
    for needs in (req.content_needs(), req.needs()):  # the full needs carry the same content needs
        assert {k for k in kinds if getattr(needs, k)} == wanted
    assert req.content_needs().context_tokens == 0  # cheap: no token estimate for a request naming its model


@pytest.mark.parametrize(
    ("extra", "forced"),
    [
        ({"tool_choice": "required"}, True),
        ({"tool_choice": {"type": "function", "function": {"name": "f"}}}, True),
        ({"tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": []}}}, True),
        ({"tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}}}, False),
        ({"tool_choice": "auto"}, False),
        ({"tool_choice": "none"}, False),
        ({}, False),
        ({"functions": [{"name": "f"}], "function_call": {"name": "f"}}, True),
        ({"functions": [{"name": "f"}], "function_call": "auto"}, False),
    ],
)
def test_a_required_tool_call_is_a_content_need(extra: dict[str, Any], forced: bool) -> None:
    """Checked even for a request naming its model (router/select.py: direct), as images are."""
    req = ChatCompletionRequest.model_validate({"model": "m", "messages": USER, "tools": [TOOL], **extra})
    assert req.content_needs().forced_call is forced and req.needs().forced_call is forced


@pytest.mark.parametrize("modalities", [["video"], "audio", [1]])
def test_unknown_modalities_are_refused_naming_them(modalities: Any) -> None:
    with pytest.raises(ValidationError) as e:
        ChatCompletionRequest.model_validate({"model": "m", "messages": USER, "modalities": modalities})
    assert (from_validation([dict(x) for x in e.value.errors()]).param or "").startswith("modalities")


@pytest.mark.parametrize(
    ("body", "unchecked"),
    [
        ({}, False),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}, IMAGE, AUDIO, FILE]}]}, False),
        ({"reasoning_format": "x"}, True),
        ({"messages": [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": "u"}}]}]}, True),
        (
            {
                "messages": [
                    *USER,
                    {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "type": "custom", "custom": {}}]},
                    {"role": "tool", "tool_call_id": "c", "content": "r"},
                ]
            },
            True,
        ),
        (
            {
                "messages": [
                    *USER,
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
                    },
                    {"role": "tool", "tool_call_id": "c", "content": "r"},
                ]
            },
            False,
        ),
    ],
)
def test_what_the_gateway_passes_on_unchecked_is_known(body: dict[str, Any], unchecked: bool) -> None:
    req = ChatCompletionRequest.model_validate({"model": "m", "messages": USER, **body})
    assert req.carries_unchecked() is unchecked


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("max_tokens", True, "expected an integer, but got a boolean instead"),
        ("max_tokens", 5.0, "expected an integer, but got a decimal number instead"),
        ("temperature", "0.5", "expected a number, but got a string instead"),
        ("model", 3, "expected a string, but got an integer instead"),
        ("stream", None, "expected a boolean, but got null instead"),
    ],
)
def test_a_value_of_the_wrong_type_is_worded_as_openai_words_it(field: str, value: Any, says: str) -> None:
    """As the gateway parses a body (JSON mode), and as OpenAI answers: code `invalid_type`."""
    raw = json.dumps({"model": "m", "messages": USER, field: value})
    with pytest.raises(ValidationError) as e:
        ChatCompletionRequest.model_validate_json(raw)
    err = from_validation([dict(x) for x in e.value.errors()])
    assert (err.param, err.code, err.message) == (field, "invalid_type", f"Invalid type for '{field}': {says}.")


def test_a_rule_of_the_gateways_says_the_type_without_guessing_what_came() -> None:
    """The message's `name` is checked by gateway/chat_rules.py, whose error carries the whole body as its input:
    it was worded "but got an object instead" for `"name": 5`."""
    raw = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x", "name": 5}]})
    with pytest.raises(ValidationError) as e:
        ChatCompletionRequest.model_validate_json(raw)
    err = from_validation([dict(x) for x in e.value.errors()])
    assert (err.param, err.code) == ("messages.0.name", "invalid_type")
    assert err.message == "Invalid type for 'messages.0.name': expected a string."


def test_a_whole_number_is_a_number() -> None:
    """Strict does not mean fussy: an integer is a valid temperature, as in OpenAI's API."""
    req = ChatCompletionRequest.model_validate_json(json.dumps({"model": "m", "messages": USER, "temperature": 1}))
    assert req.temperature == 1.0
