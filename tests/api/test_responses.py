"""POST /v1/responses through the running gateway and the official SDK: answers, function calls, streams, refusals,
and the same routing, cache and ledger as chat."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from gateway.cache import MemoryStore
from tests.conftest import GatewayFactory, api_config, cache_settled, sdk
from tests.fakes.upstream import FakeUpstream


def test_the_sdks_responses_create_is_routed_costed_and_booked(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    raw = sdk(server.url).responses.with_raw_response.create(
        model="mid", instructions="Be brief.", input="what is two plus two", max_output_tokens=30
    )
    r = raw.parse()
    assert r.output_text == "echo: what is two plus two" and r.status == "completed" and r.model == "mid"
    assert r.usage is not None and r.usage.input_tokens > 0 and r.usage.output_tokens == 6
    assert raw.headers["x-tiergate-model"] == "mid" and float(raw.headers["x-tiergate-cost-usd"]) > 0
    sent = fresh_upstream.received[-1]
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "what is two plus two"},
    ]
    assert sent["max_tokens"] == 30
    [row] = svc.ledger.rows()
    assert (row["endpoint"], row["routed_model"], row["status"], row["completion_tokens"]) == (
        "responses",
        "mid",
        200,
        6,
    )
    assert row["request_id"] == raw.headers["x-request-id"]


def test_a_function_call_round_trip(gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream) -> None:
    server, _ = gateway_factory(api_config(fresh_upstream.base_url))
    client = sdk(server.url)
    tools = [{"type": "function", "name": "search", "parameters": {"type": "object", "properties": {}}}]
    first = client.responses.create(model="mid", input="[tool] find cats", tools=tools)  # type: ignore[arg-type]
    [call] = first.output
    assert call.type == "function_call" and call.name == "search" and "find cats" in call.arguments
    # The app sends the call and its result back, as the Responses API has it; the gateway turns them into chat turns.
    second = client.responses.create(
        model="mid",
        tools=tools,  # type: ignore[arg-type]
        input=[
            {"role": "user", "content": "[tool] find cats"},
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "3 cats found"},
            {"role": "user", "content": "summarise"},
        ],
    )
    assert second.output_text == "echo: summarise"
    turns = fresh_upstream.received[-1]["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "tool", "user"]
    assert turns[1]["tool_calls"][0]["id"] == call.call_id and turns[2]["tool_call_id"] == call.call_id


def test_a_stream_through_the_sdks_helper(gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream) -> None:
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    deltas = []
    with sdk(server.url).responses.stream(model="mid", input="stream me please") as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == "echo: stream me please" and len(deltas) > 1
    assert final.status == "completed" and final.usage is not None and final.usage.output_tokens == 4
    [row] = svc.ledger.rows()
    assert (row["endpoint"], row["stream"], row["completion_tokens"]) == ("responses", True, 4)


def test_chat_and_responses_share_the_cache(gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream) -> None:
    server, svc = gateway_factory(api_config(fresh_upstream.base_url), store=MemoryStore(100))
    client = sdk(server.url)
    client.chat.completions.create(model="mid", messages=[{"role": "user", "content": "cached?"}], temperature=0)
    cache_settled(svc)
    again = client.responses.with_raw_response.create(model="mid", input="cached?", temperature=0)
    assert again.headers["x-tiergate-cache"] == "hit" and again.parse().output_text == "echo: cached?"
    assert fresh_upstream.calls_for("mid") == 1


def test_what_it_cannot_do_is_a_clear_400_on_the_record(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    client = sdk(server.url)
    with pytest.raises(openai.BadRequestError) as stored:
        client.responses.create(model="mid", input="hi", previous_response_id="resp_123")
    assert stored.value.param == "previous_response_id" and stored.value.code == "unsupported_parameter"
    with pytest.raises(openai.BadRequestError) as tool:
        client.responses.create(model="mid", input="hi", tools=[{"type": "web_search"}])  # type: ignore[list-item]
    assert tool.value.param == "tools.0" and "web_search" in tool.value.message
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model="mid", input="hi", temperature=3)
    assert bad.value.param == "temperature"
    assert httpx.get(f"{server.url}/v1/responses").status_code == 405
    with pytest.raises(openai.NotFoundError) as gone:
        client.responses.retrieve("resp_123")
    assert gone.value.code == "response_not_found" and "stores no responses" in gone.value.message
    assert fresh_upstream.received == []
    rows = svc.ledger.rows()
    assert [(r["endpoint"], r["status"], r["requested_model"]) for r in rows] == [("responses", 400, "mid")] * 3


def test_a_streamed_function_call(gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream) -> None:
    server, _ = gateway_factory(api_config(fresh_upstream.base_url))
    tools = [{"type": "function", "name": "search", "parameters": {"type": "object", "properties": {}}}]
    with sdk(server.url).responses.stream(model="mid", input="[tool] find cats", tools=tools) as stream:  # type: ignore[arg-type]
        done = [e for e in stream if e.type == "response.function_call_arguments.done"]
        final = stream.get_final_response()
    [call] = final.output
    assert call.type == "function_call" and call.name == "search"
    assert json.loads(call.arguments) == {"q": "[tool] find cats"} and done[0].arguments == call.arguments
    assert final.status == "completed"


@pytest.mark.parametrize(
    ("body", "param", "chat_param"),
    [
        (
            {"input": [{"role": "developer", "content": [{"type": "input_image", "image_url": "data:,"}]}, "hi"]},
            "input",
            "messages.0.content.0.type",
        ),
        (
            {
                "input": "hi",
                "tools": [{"type": "function", "name": "f"}],
                "tool_choice": {"type": "function", "name": "g"},
            },
            "tool_choice.name",
            "tool_choice.function.name",
        ),
        (
            {"input": "hi", "tools": [{"type": "function", "name": "f"}], "parallel_tool_calls": "no"},
            "parallel_tool_calls",
            None,
        ),
        (  # an output for a call the input never made: OpenAI's Responses API refuses it too
            {"input": ["hi", {"type": "function_call_output", "call_id": "c9", "output": "42"}]},
            "input",
            "messages.1.role",
        ),
        (  # a call whose output is missing
            {"input": ["hi", {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}, "and?"]},
            "input",
            "messages.1.tool_calls",
        ),
    ],
    ids=["input", "tool-choice", "flat", "stray-output", "unanswered-call"],
)
def test_a_refusal_of_the_translated_chat_request_names_the_responses_field(
    gateway_factory: GatewayFactory,
    fresh_upstream: FakeUpstream,
    body: dict[str, object],
    param: str,
    chat_param: str | None,
) -> None:
    """The Responses client wrote `input` and `tool_choice.name`, not chat's `messages.0...` and `.function.name`."""
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    if isinstance(body["input"], list):
        body["input"] = [x if isinstance(x, dict) else {"role": "user", "content": x} for x in body["input"]]
    r = httpx.post(f"{server.url}/v1/responses", json={"model": "mid", **body})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"] == param
    assert (chat_param is None) or f"in its chat translation, '{chat_param}'" in err["message"]
    assert fresh_upstream.received == []
    (row,) = svc.ledger.rows()
    assert (row["endpoint"], row["status"]) == ("responses", 400)


@pytest.mark.parametrize(("tokens", "status"), [(0, 400), (15, 400), (16, 200)])
def test_max_output_tokens_below_openais_floor_is_refused_as_openai_refuses_it(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, tokens: int, status: int
) -> None:
    """OpenAI's Responses API takes no fewer than 16 output tokens; llama-server takes any, so 12 was answered by
    the local model and would have been a 400 from a hosted one."""
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    body = {"model": "mid", "input": "hi", "max_output_tokens": tokens}
    r = httpx.post(f"{server.url}/v1/responses", json=body)
    assert r.status_code == status
    if status == 400:
        err = r.json()["error"]
        assert (err["param"], err["code"]) == ("max_output_tokens", "integer_below_min_value"), err
        assert f"expected a value >= 16, got {tokens}" in err["message"] and fresh_upstream.received == []
    (row,) = svc.ledger.rows()
    assert (row["endpoint"], row["status"]) == ("responses", status)


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        (
            "/v1/responses",
            {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "data:,"}]}]},
            "input",
        ),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}]},
            "messages",
        ),
    ],
)
def test_a_need_no_model_meets_names_the_field_the_client_wrote(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, path: str, body: dict[str, object], param: str
) -> None:
    """Routing refuses an image for a model without vision by the chat field (`messages`); a Response's is `input`."""
    server, _ = gateway_factory(api_config(fresh_upstream.base_url))
    r = httpx.post(f"{server.url}{path}", json={"model": "mid", **body})
    assert r.status_code == 400
    err = r.json()["error"]
    assert (err["param"], err["code"]) == (param, "unsupported_capability"), err
    assert fresh_upstream.received == []
