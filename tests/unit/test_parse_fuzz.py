"""Any body, however malformed, is parsed into a request or refused with the client's 400; never a crash.

Session after session found one more shape that got past parsing and failed later as a 500 (a part that is not an
object, an integer too large to write, a schema that is not a dict, ...). Hypothesis draws bodies shaped like chat,
Responses and Completions requests, with arbitrary JSON wherever a value goes, and checks the whole pure path a
request takes before any model is called: parsing and the rules, the error built from a refusal, and on success
what routing, the cache key and the classifier read of it. Derandomized, so CI runs the same bodies every time.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from classifiers.features import prompt_from_messages
from gateway.errors import GatewayError, from_validation
from gateway.response_cache import cache_key
from gateway.routes.chat import CHAT, Surface
from gateway.routes.completions import COMPLETIONS
from gateway.routes.responses import RESPONSES

SETTINGS = settings(
    max_examples=400, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)

# Any JSON value: integers past 64 bits, deep nesting and odd text included.
JSON: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([2**64, -(2**63) - 1, 10**30])  # past what orjson writes: drawn often, not by luck
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _or_junk(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly `strategy`, now and then any JSON at all: a body with junk in every field is refused at once, and
    what happens after parsing is what needs bodies that parse."""
    return st.integers(0, 9).flatmap(
        lambda roll: JSON if roll == 0 else strategy
    )  # one_of would draw JSON half the time


def _one_of(*values: Any) -> st.SearchStrategy[Any]:
    """One of `values` (the shapes the API knows), or now and then any JSON."""
    return _or_junk(st.sampled_from(values))


def _dict(required: dict[str, Any], optional: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(required, optional=optional)


SCHEMA: st.SearchStrategy[Any] = st.recursive(
    _dict(
        {"type": _one_of("object", "string", "integer", "number", "array")},
        {
            k: _or_junk(st.integers(-3, 12))
            for k in ("minimum", "maximum", "exclusiveMinimum", "minLength", "maxLength", "minItems", "maxItems")
        }
        | {"pattern": _one_of("^a{5,2}$", "^[a-z]{2,3}$", "(", "a{2,}")},
    ),
    lambda inner: _dict(
        {"type": _one_of("object", "array")},
        {
            "properties": st.dictionaries(st.text(max_size=4), inner, max_size=3),
            "items": inner,
            "anyOf": st.lists(inner),
        },
    ),
    max_leaves=6,
)
PART = _dict(
    {"type": _one_of("text", "image_url", "input_audio", "file", "video_url", "refusal")},
    {
        "text": _one_of("What is 2+2?", ""),
        "image_url": _one_of({"url": "data:image/png;base64,AAAA"}, {"url": "https://x/y.png", "detail": "low"}),
        "input_audio": _one_of({"data": "AAAA", "format": "wav"}),
        "file": _one_of({"file_data": "data:application/pdf;base64,AAAA", "filename": "a.pdf"}, {"file_id": "f"}),
    },
)
TEXT_PART = st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=20)})
CONTENT = st.text(max_size=30) | st.lists(TEXT_PART | PART, min_size=1, max_size=3)
TURN = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "developer", "user", "assistant"]), "content": CONTENT}
)
# An assistant's tool call and its answer: the one history shape whose order the rules check.
TOOL_TURNS = st.just(
    [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
    ]
)
MESSAGES = st.tuples(st.lists(TURN, max_size=3), st.lists(TOOL_TURNS, max_size=1), TURN).map(
    lambda t: [*t[0], *(m for pair in t[1] for m in pair), {**t[2], "role": "user"}]
)
TOOL = st.fixed_dictionaries(
    {"type": st.just("function"), "function": _dict({"name": _one_of("f", "g")}, {"parameters": _or_junk(SCHEMA)})}
)
CHAT_CORE = _dict(
    {"model": st.sampled_from(["auto", "m"]), "messages": MESSAGES},
    {
        "tools": st.lists(TOOL, min_size=1, max_size=2),
        "tool_choice": _one_of("auto", "none", "required", {"type": "function", "function": {"name": "f"}}),
        "response_format": _one_of({"type": "json_object"})
        | _dict(
            {"type": st.just("json_schema"), "json_schema": _dict({"name": st.just("x"), "schema": SCHEMA}, {})}, {}
        ),
        "n": _or_junk(st.integers(1, 8)),
        "max_tokens": _or_junk(st.integers(1, 10**6)),
        "stream": _one_of(True, False),
        "stream_options": _one_of({"include_usage": True}),
        "logit_bias": _or_junk(st.dictionaries(st.text(max_size=6), _or_junk(st.integers()), max_size=3)),
        "logprobs": _one_of(True, False),
        "top_logprobs": _or_junk(st.integers(0, 20)),
        "modalities": _one_of(["text"], ["text", "audio"]),
        "audio": _one_of({"voice": "alloy", "format": "wav"}),
        "stop": _one_of("\n", ["a", "b"]),
        "seed": _or_junk(st.integers()),
        "temperature": _or_junk(st.floats(0, 2)),
        "json_schema": _or_junk(SCHEMA),  # llama.cpp's own
        "grammar": _one_of('root ::= "a"{5,2}', 'root ::= "a"'),
        "x_unknown": JSON,
    },
)


@st.composite
def _junked(draw: st.DrawFn, core: st.SearchStrategy[Any]) -> Any:
    """A body from `core`, and in half of them one value anywhere inside replaced by any JSON: mostly-valid bodies
    reach what runs after parsing, and one bad value at a time is how clients get a field wrong."""
    body = copy.deepcopy(draw(core))  # st.just values are shared between draws: never mutate them in place
    if not draw(st.booleans()):
        return body
    paths: list[list[Any]] = []

    def walk(node: Any, path: list[Any]) -> None:
        paths.append(path)
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for k, v in items:
            walk(v, [*path, k])

    walk(body, [])
    path = draw(st.sampled_from(paths[1:] or paths))
    junk = draw(JSON)
    if not path:
        return junk
    node = body
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = junk
    return body


CHAT_BODY = _junked(CHAT_CORE)
INPUT_PART = _dict(
    {"type": _one_of("input_text", "output_text", "input_image", "input_file", "input_audio")},
    {
        "text": _one_of("hi"),
        "image_url": _one_of("https://x/y.png"),
        "file_data": _one_of("data:x"),
        "input_audio": _one_of({"data": "AAAA", "format": "wav"}),
    },
)
ITEM = (
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "system", "developer"])},
        optional={
            "content": st.text(max_size=20) | st.lists(INPUT_PART, min_size=1, max_size=3),
            "type": st.just("message"),
        },
    )
    | st.just({"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"})
    | st.just({"type": "function_call_output", "call_id": "c1", "output": "ok"})
)
FORMAT = _one_of({"type": "text"}, {"type": "json_object"}) | _dict(
    {"type": st.just("json_schema"), "name": st.just("x"), "schema": SCHEMA}, {}
)
RESPONSES_CORE = _dict(
    {
        "model": st.sampled_from(["auto", "m"]),
        "input": st.text(min_size=1, max_size=20) | st.lists(ITEM, min_size=1, max_size=4),
    },
    {
        "instructions": _one_of("Be brief."),
        "max_output_tokens": _or_junk(st.integers(1, 10**6)),
        "text": _dict({"format": FORMAT}, {}),
        "tools": st.lists(
            st.fixed_dictionaries({"type": st.just("function"), "name": st.just("f")}, optional={"parameters": SCHEMA}),
            max_size=2,
        ),
        "tool_choice": _one_of("auto", {"type": "function", "name": "f"}),
        "reasoning": _one_of({"effort": "low"}),
        "top_logprobs": _or_junk(st.integers(0, 20)),
        "metadata": JSON,
        "stream": _one_of(True, False),
    },
)
RESPONSES_BODY = _junked(RESPONSES_CORE)
COMPLETIONS_CORE = _dict(
    {
        "model": st.sampled_from(["auto", "m"]),
        "prompt": st.text(max_size=20)
        | st.lists(st.text(max_size=8), max_size=2)
        | st.lists(st.integers(), max_size=3),
    },
    {
        "max_tokens": _or_junk(st.integers(1, 10**6)),
        "n": _or_junk(st.integers(1, 8)),
        "best_of": _or_junk(st.integers(1, 8)),
        "stream": _one_of(True, False),
        "stream_options": _one_of({"include_usage": True}),
        "suffix": _one_of("", "end"),
        "echo": _one_of(True, False),
        "logprobs": _one_of(None, 1),
        "stop": _one_of("\n", ["a", "b"]),
        "temperature": _or_junk(st.floats(0, 2)),
        "metadata": JSON,
        "x_unknown": JSON,
    },
)
COMPLETIONS_BODY = _junked(COMPLETIONS_CORE)


def _raw(body: Any) -> bytes:
    return json.dumps(body).encode()  # json, not orjson: it writes the integers orjson cannot, as a client may


def _parsed_or_refused(surface: Surface, body: Any) -> None:
    try:
        req, _ = surface.parse(_raw(body))
    except ValidationError as e:
        err = from_validation([dict(x) for x in e.errors()])  # the refusal itself must build
        assert err.status == 400 and err.message
        return
    except GatewayError as e:
        assert 400 <= e.status < 500
        return
    # What the pipeline reads of an accepted request before any model is called.
    req.needs()
    req.content_needs()
    req.carries_unchecked()
    req.sampling_params()
    req.extras()
    cache_key(req, "m", "policy")
    prompt_from_messages([m.model_dump() for m in req.messages])


@SETTINGS
@given(CHAT_BODY)
def test_any_chat_body_is_parsed_or_refused_never_a_crash(body: dict[str, Any]) -> None:
    _parsed_or_refused(CHAT, body)


@SETTINGS
@given(RESPONSES_BODY)
def test_any_responses_body_is_parsed_or_refused_never_a_crash(body: dict[str, Any]) -> None:
    _parsed_or_refused(RESPONSES, body)


@SETTINGS
@given(COMPLETIONS_BODY)
def test_any_completions_body_is_parsed_or_refused_never_a_crash(body: dict[str, Any]) -> None:
    _parsed_or_refused(COMPLETIONS, body)


@SETTINGS
@given(JSON)
def test_any_json_at_all_is_refused_or_parsed(body: Any) -> None:
    for surface in (CHAT, RESPONSES, COMPLETIONS):
        _parsed_or_refused(surface, body)
