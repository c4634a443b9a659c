"""The Responses API translation (gateway/responses_api.py): requests to chat, chat answers and streams back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import ValidationError

from gateway.errors import InvalidRequest, from_validation
from gateway.protocol import ChatCompletionRequest
from gateway.responses_api import ResponsesRequest, from_chat, stream_events, to_chat


def _req(**kw: Any) -> ResponsesRequest:
    return ResponsesRequest.model_validate({"model": "auto", "input": "hi", **kw})


def test_a_request_becomes_the_chat_request_that_asks_the_same() -> None:
    tools = [{"type": "function", "name": "lookup", "description": "d", "parameters": {"type": "object"}}]
    fmt = {"format": {"type": "json_schema", "name": "n", "schema": {"type": "object"}, "strict": True}}
    body = to_chat(
        _req(
            instructions="Be brief.",
            input=[
                {"role": "user", "content": [{"type": "input_text", "text": "look up x"}]},
                {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": '{"q": "x"}'},
                {"type": "function_call", "call_id": "c2", "name": "lookup", "arguments": '{"q": "y"}'},
                {"type": "function_call_output", "call_id": "c1", "output": "42"},
                {"type": "reasoning", "summary": []},
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_image", "image_url": "data:image/png;base64,AA", "detail": "low"}],
                },
            ],
            tools=tools,
            tool_choice={"type": "function", "name": "lookup"},
            text=fmt,
            max_output_tokens=50,
            temperature=0.2,
            store=True,  # accepted, not acted on
            stream_options={"include_obfuscation": False},
            metadata={"a": "b"},
        )
    )
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "look up x"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [  # two calls in a row are one assistant turn in chat
                {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "x"}'}},
                {"id": "c2", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "y"}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA", "detail": "low"}}],
        },
    ]
    assert body["tools"] == [
        {"type": "function", "function": {"name": "lookup", "description": "d", "parameters": {"type": "object"}}}
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "lookup"}}
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "n", "schema": {"type": "object"}, "strict": True},
    }
    assert (body["max_tokens"], body["temperature"], body["stream"]) == (50, 0.2, False)
    assert "store" not in body and "metadata" not in body
    streamed = to_chat(_req(stream=True))
    assert streamed["messages"] == [{"role": "user", "content": "hi"}]
    assert streamed["stream_options"] == {"include_usage": True}


def test_files_and_audio_become_chat_parts_that_routing_sends_to_models_taking_them() -> None:
    pdf = {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}
    audio = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
    stored = {"type": "input_file", "file_id": "file-1"}
    body = to_chat(
        _req(input=[{"role": "user", "content": [{"type": "input_text", "text": "sum up"}, pdf, audio, stored]}])
    )
    assert body["messages"][0]["content"][1:] == [
        {"type": "file", "file": {"file_data": pdf["file_data"], "filename": "a.pdf"}},
        audio,
        {"type": "file", "file": {"file_id": "file-1"}},
    ]
    needs = ChatCompletionRequest.model_validate(body).content_needs()
    assert needs.files and needs.audio_input and not needs.vision


@pytest.mark.parametrize(
    ("kw", "param"),
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"background": True}, "background"),
        ({"tools": [{"type": "web_search"}]}, "tools.0"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_url": "https://x"}]}]},
            "input.0.content.0",
        ),
        ({"input": [{"role": "user", "content": [{"type": "input_video", "url": "https://x"}]}]}, "input.0.content.0"),
        ({"input": [{"type": "item_reference", "id": "x"}]}, "input.0"),
        ({"input": [{"role": "wizard", "content": "x"}]}, "input.0.role"),
        ({"text": {"format": {"type": "yaml"}}}, "text.format"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt"),
        ({"input": []}, "input"),
        # Malformed parts are the client's 400 naming them, never the gateway's 500.
        ({"input": [{"role": "user", "content": 5}]}, "input.0.content"),
        ({"input": [{"role": "user"}]}, "input.0.content"),
        ({"input": [{"role": "user", "content": [5]}]}, "input.0.content.0"),
        ({"input": [{"role": "user", "content": [{"text": "x"}]}]}, "input.0.content.0.type"),  # no type at all
        ({"input": [{"role": "user", "content": [{"type": 5, "text": "x"}]}]}, "input.0.content.0.type"),
        ({"input": [{"role": "user", "content": [{"type": "input_text", "text": 3}]}]}, "input.0.content.0.text"),
        ({"input": [{"type": "function_call", "call_id": "c"}]}, "input.0.name"),
        ({"input": [{"type": "function_call_output", "output": "x"}]}, "input.0.call_id"),
        ({"input": [{"type": "function_call_output", "call_id": "c", "output": 5}]}, "input.0.content"),
        ({"tools": [{"type": "function"}]}, "tools.0.name"),
        ({"tool_choice": {"type": "function"}}, "tool_choice.name"),
        ({"text": {"format": "json"}}, "text.format"),
        ({"text": {"format": {"type": "json_schema", "name": "n"}}}, "text.format.schema"),
        ({"reasoning": {"effort": 5}}, "reasoning.effort"),
        ({"input": [{"type": "reasoning"}], "instructions": "x"}, "input"),
    ],
)
def test_what_chat_cannot_carry_is_a_400_naming_it(kw: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        to_chat(_req(**kw))
    assert refused.value.param == param and refused.value.status == 400


WITH_LOGPROBS = ["message.output_text.logprobs"]


@pytest.mark.parametrize(
    ("include", "top", "chat"),
    [
        (WITH_LOGPROBS, 3, {"logprobs": True, "top_logprobs": 3}),
        (WITH_LOGPROBS, 0, {"logprobs": True}),
        (WITH_LOGPROBS, None, {"logprobs": True}),
        (["reasoning.encrypted_content"], 3, {}),
        (None, 3, {}),  # OpenAI answers `logprobs: []` unless `include` asks: nothing to ask the model for
        (None, None, {}),
    ],
)
def test_include_asks_chat_for_logprobs(include: list[str] | None, top: int | None, chat: dict[str, Any]) -> None:
    """Chat takes `top_logprobs` only with `logprobs: true` (gateway/chat_rules.py); Responses has no `logprobs`:
    `include: ["message.output_text.logprobs"]` asks for them, `top_logprobs` for alternatives."""
    body = to_chat(_req(top_logprobs=top, include=include))
    assert {k: body[k] for k in ("logprobs", "top_logprobs") if k in body} == chat
    ChatCompletionRequest.model_validate(body)  # the translation passes chat's rules


def test_an_include_openai_does_not_know_is_a_400_naming_it() -> None:
    with pytest.raises(ValidationError) as e:
        _req(include=["message.output_text.logprobs", "output_text.logprobs"])
    refused = from_validation([dict(x) for x in e.value.errors()])
    assert refused.param == "include.1" and "message.output_text.logprobs" in refused.message


def _token(t: str, lp: float, *top: tuple[str, float]) -> dict[str, Any]:
    """A chat logprobs entry as llama-server sends it (with its own `id`, which the Responses API has not)."""
    alts = [{"id": 1, "token": a, "bytes": list(a.encode()), "logprob": x} for a, x in top]
    return {"id": 0, "token": t, "bytes": list(t.encode()), "logprob": lp, "top_logprobs": alts}


def test_a_chat_answers_logprobs_become_the_output_texts() -> None:
    lp = {"content": [_token("Par", -0.1, ("Par", -0.1), ("Lon", -2.5)), _token("is", -0.01)]}
    choice = {"message": {"content": "Paris"}, "finish_reason": "stop", "logprobs": lp}
    part = from_chat(_req(include=WITH_LOGPROBS, top_logprobs=2), {"choices": [choice]})["output"][0]["content"][0]
    assert part["logprobs"] == [
        {
            "token": "Par",
            "bytes": [80, 97, 114],
            "logprob": -0.1,
            "top_logprobs": [
                {"token": "Par", "bytes": [80, 97, 114], "logprob": -0.1},
                {"token": "Lon", "bytes": [76, 111, 110], "logprob": -2.5},
            ],
        },
        {"token": "is", "bytes": [105, 115], "logprob": -0.01, "top_logprobs": []},
    ]


@pytest.mark.parametrize(("tools", "chat"), [(None, None), ([{"type": "function", "name": "f"}], False)])
def test_parallel_tool_calls_reaches_chat_only_beside_tools(tools: Any, chat: bool | None) -> None:
    """A Response takes `parallel_tool_calls` alone (and echoes it); chat refuses it without tools, as OpenAI."""
    body = to_chat(_req(parallel_tool_calls=False, tools=tools))
    assert body.get("parallel_tool_calls") is chat
    ChatCompletionRequest.model_validate(body)  # the translation passes chat's rules


@pytest.mark.parametrize(
    ("metadata", "param"),
    [({f"k{i}": "v" for i in range(17)}, "metadata"), ({"k": 1}, "metadata.k"), ({"k": "v" * 513}, "metadata.k")],
)
def test_metadata_past_openais_bounds_is_refused_naming_it(metadata: dict[str, Any], param: str) -> None:
    """Echoed in the Response, never sent on: refused as OpenAI refuses it, not answered with it echoed."""
    with pytest.raises(ValidationError) as e:
        ResponsesRequest.model_validate({"model": "m", "input": "hi", "metadata": metadata})
    assert from_validation([dict(x) for x in e.value.errors()]).param == param
    ResponsesRequest.model_validate({"model": "m", "input": "hi", "metadata": {"k": "v"}})


def test_a_chat_answer_becomes_a_response() -> None:
    call = {"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    chat = {
        "model": "mid",
        "created": 1_700_000_000,
        "choices": [
            {"message": {"role": "assistant", "content": "Paris", "tool_calls": [call]}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
    }
    r = from_chat(_req(instructions="x"), chat)
    assert (r["object"], r["status"], r["model"], r["created_at"], r["instructions"]) == (
        "response",
        "completed",
        "mid",
        1_700_000_000,
        "x",
    )
    assert r["id"].startswith("resp_")
    text, fn = r["output"]
    assert text["type"] == "message" and text["content"] == [
        {"type": "output_text", "text": "Paris", "annotations": [], "logprobs": []}  # [] as OpenAI's, never null
    ]
    assert (fn["type"], fn["call_id"], fn["name"], fn["arguments"]) == ("function_call", "call_9", "f", "{}")
    assert r["usage"]["input_tokens"] == 7 and r["usage"]["output_tokens"] == 2 and r["usage"]["total_tokens"] == 9
    cut = from_chat(_req(), {**chat, "choices": [{"message": {"content": "Par"}, "finish_reason": "length"}]})
    assert cut["status"] == "incomplete" and cut["incomplete_details"] == {"reason": "max_output_tokens"}
    assert [o["status"] for o in r["output"]] == ["completed", "completed"]
    assert [o["status"] for o in cut["output"]] == ["incomplete"]  # the item the cut fell in says so, as OpenAI's


def test_a_cut_answer_marks_the_item_it_fell_in_incomplete_and_only_that_one() -> None:
    call = {"id": "call_9", "type": "function", "function": {"name": "f", "arguments": '{"q": "x'}}
    msg = {"role": "assistant", "content": "Looking", "tool_calls": [call]}
    for finish, reason in (("length", "max_output_tokens"), ("content_filter", "content_filter")):
        r = from_chat(_req(), {"model": "m", "choices": [{"message": msg, "finish_reason": finish}]})
        assert (r["status"], r["incomplete_details"]) == ("incomplete", {"reason": reason})
        assert [(o["type"], o["status"]) for o in r["output"]] == [
            ("message", "completed"),
            ("function_call", "incomplete"),
        ]


async def _chunks(items: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for c in items:
        yield c


def _events(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        return [e async for e in stream_events(_req(stream=True), _chunks(chunks), "mid")]

    return asyncio.run(go())


def test_a_chat_stream_becomes_the_responses_events() -> None:
    def tc(i: int, **f: Any) -> dict[str, Any]:
        return {"choices": [{"delta": {"tool_calls": [{"index": i, **f}]}}]}

    events = _events(
        [
            {"choices": [{"delta": {"role": "assistant", "content": "Hel"}}]},
            {"choices": [{"delta": {"content": "lo"}}]},
            tc(0, id="call_a", function={"name": "f", "arguments": '{"q":'}),
            tc(0, function={"arguments": ' "x"}'}),
            tc(1, id="call_b", function={"name": "g", "arguments": "{}"}),
            {"choices": [{"delta": {}, "finish_reason": "tool_calls"}]},
            {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}},
        ]
    )
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[6]["text"] == "Hello" and events[6]["output_index"] == 0
    assert [e["output_index"] for e in events if e["type"] == "response.output_item.added"] == [0, 1, 2]
    assert [e["output_index"] for e in events if e["type"] == "response.output_item.done"] == [0, 1, 2]
    done = events[-1]["response"]
    assert done["status"] == "completed" and done["model"] == "mid" and done["id"] == events[0]["response"]["id"]
    assert [o["type"] for o in done["output"]] == ["message", "function_call", "function_call"]
    assert done["output"][1]["arguments"] == '{"q": "x"}' and done["output"][2]["call_id"] == "call_b"
    assert done["usage"]["output_tokens"] == 4


def test_a_streams_logprobs_ride_on_its_deltas_and_add_up_in_the_item() -> None:
    def chunk(text: str, *tokens: dict[str, Any]) -> dict[str, Any]:
        return {"choices": [{"delta": {"content": text}, "logprobs": {"content": list(tokens)}}]}

    events = _events([chunk("Par", _token("Par", -0.1, ("Lon", -2.5))), chunk("is", _token("is", -0.01))])
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert [[t["token"] for t in d["logprobs"]] for d in deltas] == [["Par"], ["is"]]
    assert deltas[0]["logprobs"][0]["top_logprobs"][0]["token"] == "Lon"
    added = next(e for e in events if e["type"] == "response.content_part.added")
    assert added["part"]["logprobs"] == []  # what was known when the part opened, not what came after
    (done,) = [e for e in events if e["type"] == "response.output_text.done"]
    assert [t["token"] for t in done["logprobs"]] == ["Par", "is"]
    final = events[-1]["response"]["output"][0]["content"][0]
    assert [(t["token"], t["logprob"]) for t in final["logprobs"]] == [("Par", -0.1), ("is", -0.01)]


def test_a_broken_stream_ends_with_an_error_and_response_failed() -> None:
    events = _events(
        [
            {"choices": [{"delta": {"content": "par"}}]},
            {
                "error": {
                    "message": "upstream went away",
                    "type": "server_error",
                    "code": "upstream_error",
                    "param": None,
                }
            },
        ]
    )
    types = [e["type"] for e in events]
    assert types[-3:] == ["response.output_item.done", "error", "response.failed"]
    assert events[-2]["message"] == "upstream went away"
    failed = events[-1]["response"]
    assert failed["status"] == "failed" and failed["error"]["code"] == "upstream_error"
    assert failed["output"][0]["content"][0]["text"] == "par"
    assert failed["output"][0]["status"] == "incomplete"  # the text the break cut short
    assert events[-3]["item"]["status"] == "incomplete"


def test_a_stream_cut_by_max_output_tokens_closes_its_last_item_incomplete() -> None:
    def tc(i: int, **f: Any) -> dict[str, Any]:
        return {"choices": [{"delta": {"tool_calls": [{"index": i, **f}]}}]}

    text_cut = _events(
        [
            {"choices": [{"delta": {"role": "assistant", "content": "Once upon"}}]},
            {"choices": [{"delta": {}, "finish_reason": "length"}]},
        ]
    )
    done = [e for e in text_cut if e["type"] == "response.output_item.done"]
    assert [e["item"]["status"] for e in done] == ["incomplete"]
    assert text_cut[-1]["type"] == "response.incomplete"
    assert [o["status"] for o in text_cut[-1]["response"]["output"]] == ["incomplete"]

    call_cut = _events(
        [
            {"choices": [{"delta": {"content": "Calling"}}]},
            tc(0, id="call_a", function={"name": "f", "arguments": "{}"}),
            tc(1, id="call_b", function={"name": "g", "arguments": '{"q": "x'}),
            {"choices": [{"delta": {}, "finish_reason": "length"}]},
        ]
    )
    done = [e for e in call_cut if e["type"] == "response.output_item.done"]
    assert [e["item"]["status"] for e in done] == ["completed", "completed", "incomplete"]
    assert [o["status"] for o in call_cut[-1]["response"]["output"]] == ["completed", "completed", "incomplete"]

    whole = _events([{"choices": [{"delta": {"content": "Hi"}, "finish_reason": "stop"}]}])
    assert whole[-1]["type"] == "response.completed" and whole[-1]["response"]["output"][0]["status"] == "completed"
