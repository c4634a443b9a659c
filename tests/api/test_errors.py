"""Every error comes back in OpenAI's envelope, as the SDK's matching exception class, and is recorded."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import openai
import pytest

from gateway import sse
from gateway.routes.chat import Surface, handle_chat
from tests.conftest import GatewayFactory, api_config, model_now, sdk
from tests.fakes.upstream import FakeUpstream


def _envelope(r: httpx.Response) -> dict[str, object]:
    body = r.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return dict(body["error"])


def test_malformed_json_is_400(gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream) -> None:
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    r = httpx.post(
        f"{server.url}/v1/chat/completions",
        content=b'{"model": "auto", "messages": [',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400
    err = _envelope(r)
    assert err["type"] == "invalid_request_error" and err["code"] == "invalid_json"
    (row,) = svc.ledger.rows()
    assert row["status"] == 400 and row["error_type"] == "invalid_request_error"


@pytest.mark.parametrize("where", ["extra", "content"])
def test_a_body_nested_too_deep_is_400_and_recorded(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, where: str
) -> None:
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    deep = b"[" * 100_000 + b"]" * 100_000
    body = (
        b'{"model": "auto", "messages": [{"role": "user", "content": "x"}], "x": ' + deep + b"}"
        if where == "extra"
        else b'{"model": "auto", "messages": [{"role": "user", "content": ' + deep + b"}]}"
    )
    r = httpx.post(f"{server.url}/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400 and _envelope(r)["code"] == "invalid_json"
    (row,) = svc.ledger.rows()
    assert (row["status"], row["requested_model"]) == (400, "")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "auto"}, "messages"),
        ({"model": "auto", "messages": []}, "messages"),
        ({"model": "auto", "messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
        ({"model": "auto", "messages": [{"role": "system", "content": "x"}, {"role": "user"}]}, "messages.1.content"),
        ({"model": "auto", "messages": [{"role": "tool", "content": None, "tool_call_id": "c"}]}, "messages.0.content"),
        ({"model": "auto", "messages": [{"role": "user", "content": "x"}], "temperature": 7}, "temperature"),
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
    ],
)
def test_schema_violation_is_400_with_param(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, body: dict[str, object], param: str
) -> None:
    server, _ = gateway_factory(api_config(fresh_upstream.base_url))
    r = httpx.post(f"{server.url}/v1/chat/completions", json=body)
    assert r.status_code == 400
    err = _envelope(r)
    assert err["param"] == param and err["type"] == "invalid_request_error"


def test_sdk_sees_bad_request_and_not_found(gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream) -> None:
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    client = sdk(server.url)
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "x"}], temperature=9)
    assert bad.value.param == "temperature"
    with pytest.raises(openai.NotFoundError) as nf:
        client.chat.completions.create(model="gpt-17", messages=[{"role": "user", "content": "x"}])
    assert nf.value.code == "model_not_found" and nf.value.param == "model"
    assert "auto" in nf.value.message and "mid" in nf.value.message
    rows = svc.ledger.rows()
    assert [(r["status"], r["requested_model"]) for r in rows] == [(400, "auto"), (404, "gpt-17")]


def test_policy_forbidding_a_model_is_403(gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream) -> None:
    cfg = api_config(fresh_upstream.base_url)
    cfg["policies"]["default"]["allow_direct"] = False
    server, _ = gateway_factory(cfg)
    with pytest.raises(openai.PermissionDeniedError) as e:
        sdk(server.url).chat.completions.create(model="mid", messages=[{"role": "user", "content": "x"}])
    assert e.value.code == "model_not_allowed"


def test_a_request_no_model_could_serve_is_400_not_a_retried_503(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    client = sdk(server.url)
    with pytest.raises(openai.BadRequestError) as e:  # no model in api_config declares JSON mode
        client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "x"}], response_format={"type": "json_object"}
        )
    assert (e.value.code, e.value.param) == ("unsupported_capability", "response_format")
    assert "flaky: no JSON mode" in e.value.message
    with pytest.raises(openai.BadRequestError) as long:
        client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "x"}], max_tokens=10**6)
    assert (long.value.code, long.value.param) == ("context_length_exceeded", "messages")
    # Tools exist on gpt-4o and mid: the request is servable, so it goes through.
    ok = client.chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "x"}],
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    )
    assert ok.choices[0].message is not None
    assert fresh_upstream.calls_for("local-small") == 0
    assert [r["status"] for r in svc.ledger.rows()] == [400, 400, 200]


AUDIO = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
PDF = {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}}


def test_audio_and_files_go_to_models_declaring_them_or_are_refused_before_any_call(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    """llama-server answers audio with a 500, counted against the local model's health: three such requests put it in
    cooldown for every client. Routing sends audio and files only to models that declare them; a request naming a
    model that does not is refused before the call; an answer in audio that no model can give is refused, not
    answered in text."""
    cfg = api_config(fresh_upstream.base_url)
    cfg["models"][3]["capabilities"].update(audio_input=True, files=True)  # gpt-4o
    server, svc = gateway_factory(cfg)
    client = sdk(server.url)
    for part in (AUDIO, PDF):
        msgs: Any = [{"role": "user", "content": [{"type": "text", "text": "what is in it?"}, part]}]
        ok = client.chat.completions.create(model="auto", messages=msgs)
        assert ok.model == "gpt-4o"
        assert fresh_upstream.received[-1]["messages"][0]["content"][1] == part  # sent on as it came
        with pytest.raises(openai.BadRequestError) as named:
            client.chat.completions.create(model="local-small", messages=msgs)
        assert (named.value.code, named.value.param) == ("unsupported_capability", "messages")
        assert "'local-small'" in named.value.message
    with pytest.raises(openai.BadRequestError) as spoken:
        client.chat.completions.create(
            model="auto",
            messages=[{"role": "user", "content": "hi"}],
            modalities=["text", "audio"],
            audio={"voice": "alloy", "format": "wav"},
        )
    assert (spoken.value.code, spoken.value.param) == ("unsupported_capability", "modalities")
    assert "local-small: no audio output" in spoken.value.message
    # The Responses API's input_file becomes chat's file part, routed the same way.
    pdf = {"type": "input_file", "filename": "a.pdf", "file_data": PDF["file"]["file_data"]}  # type: ignore[index]
    answer = client.responses.create(model="auto", input=[{"role": "user", "content": [pdf]}])  # type: ignore[list-item]
    assert answer.model == "gpt-4o"
    assert fresh_upstream.received[-1]["messages"][0]["content"][0]["type"] == "file"
    assert fresh_upstream.calls_for("local-small") == 0
    assert [r["status"] for r in svc.ledger.rows()] == [200, 400, 200, 400, 400, 200]
    assert model_now(server.url)["status"] == "ok"


def test_a_schema_with_an_inverted_range_is_refused_before_classification(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    """Such a schema took llama-server to the OOM killer (gateway/schema_rules.py); no model may see it."""
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    client = sdk(server.url)
    schema = {"type": "object", "properties": {"tags": {"type": "array", "minItems": 5, "maxItems": 2}}}
    with pytest.raises(openai.BadRequestError) as chat:
        client.chat.completions.create(
            model="auto",
            messages=[{"role": "user", "content": "x"}],
            response_format={"type": "json_schema", "json_schema": {"name": "t", "schema": schema}},
        )
    assert (chat.value.code, chat.value.param) == (
        "invalid_value",
        "response_format.json_schema.schema.properties.tags.minItems",
    )
    assert "`minItems` (5) is above `maxItems` (2)" in chat.value.message
    with pytest.raises(openai.BadRequestError) as grammar:
        client.chat.completions.create(
            model="local-small",
            messages=[{"role": "user", "content": "x"}],
            extra_body={"grammar": 'root ::= "a"{5,2}'},
        )
    assert grammar.value.param == "grammar"
    with pytest.raises(openai.BadRequestError) as responses:
        client.responses.create(
            model="auto", input="x", text={"format": {"type": "json_schema", "name": "t", "schema": schema}}
        )
    assert responses.value.param == "text.format.schema.properties.tags.minItems"
    assert fresh_upstream.received == []
    assert [r["status"] for r in svc.ledger.rows()] == [400, 400, 400]


def test_unknown_route_and_method_use_the_envelope(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    server, _ = gateway_factory(api_config(fresh_upstream.base_url))
    assert httpx.get(f"{server.url}/v1/nope").status_code == 404
    _envelope(httpx.get(f"{server.url}/v1/nope"))
    r = httpx.get(f"{server.url}/v1/chat/completions")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    _envelope(r)
    r = httpx.delete(f"{server.url}/v1/models")  # FastAPI's own routes: the Allow header survives the envelope
    assert r.status_code == 405 and r.headers["allow"] == "GET"
    _envelope(r)


@pytest.mark.parametrize(
    ("content", "code", "words"),
    [(b"", "invalid_json", "no body"), (b"[1, 2]", "invalid_value", "must be a JSON object")],
)
def test_a_missing_or_non_object_body_is_named_as_such(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, content: bytes, code: str, words: str
) -> None:
    server, _ = gateway_factory(api_config(fresh_upstream.base_url))
    r = httpx.post(f"{server.url}/v1/feedback", content=content, headers={"content-type": "application/json"})
    assert r.status_code == 400
    err = _envelope(r)
    assert err["code"] == code and words in str(err["message"]) and err["param"] is None


def test_upstream_400_is_the_clients_fault_and_not_retried(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    fresh_upstream.script("flaky", status=400)
    server, _ = gateway_factory(api_config(fresh_upstream.base_url))
    with pytest.raises(openai.BadRequestError) as e:
        sdk(server.url).chat.completions.create(model="auto", messages=[{"role": "user", "content": "x [score=0.5]"}])
    assert e.value.code == "upstream_rejected"
    assert fresh_upstream.calls_for("mid") == 0


def test_gateway_keeps_serving_after_errors(gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream) -> None:
    server, _ = gateway_factory(api_config(fresh_upstream.base_url))
    for _ in range(3):
        httpx.post(f"{server.url}/v1/chat/completions", content=b"\xff\xfe")
    ok = sdk(server.url).chat.completions.create(model="mid", messages=[{"role": "user", "content": "still"}])
    assert ok.choices[0].message.content == "echo: still"


def test_an_oversized_body_is_413_and_the_gateway_keeps_serving(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    huge = b'{"model": "auto", "messages": [{"role": "user", "content": "' + b"x" * (33 << 20) + b'"}]}'
    r = httpx.post(f"{server.url}/v1/chat/completions", content=huge, headers={"content-type": "application/json"})
    assert r.status_code == 413 and _envelope(r)["code"] == "request_too_large"
    ok = sdk(server.url).chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}])
    assert ok.choices[0].message.content == "echo: hi"
    assert [(r["status"], r["error_type"]) for r in svc.ledger.rows()] == [(413, "invalid_request_error"), (200, None)]


def test_a_bug_in_a_translation_is_a_500_that_is_still_on_the_record(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    _, svc = gateway_factory(api_config(fresh_upstream.base_url))

    def broken(raw: bytes) -> Any:
        raise RuntimeError("a bug")

    surface = Surface("responses", broken, lambda _, b: b, lambda _, c, __: sse.encode(c))
    scope = {"type": "http", "headers": [], "state": {}}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b'{"model": "mid", "input": "x"}', "more_body": False}

    with pytest.raises(RuntimeError):
        asyncio.run(handle_chat(svc, scope, receive, "tg-bug", surface))
    [row] = svc.ledger.rows()
    assert (row["request_id"], row["status"], row["endpoint"], row["requested_model"]) == (
        "tg-bug",
        500,
        "responses",
        "mid",
    )


HUGE = 10**30  # JSON allows it; no upstream API takes it, and orjson (every body the gateway writes) cannot write it


@pytest.mark.parametrize(
    ("call", "param"),
    [
        (
            lambda c: c.chat.completions.create(model="auto", messages=[{"role": "user", "content": "x"}], seed=HUGE),
            "seed",
        ),
        (
            lambda c: c.chat.completions.create(
                model="auto", messages=[{"role": "user", "content": "x"}], stream=True, extra_body={"top_k": HUGE}
            ),
            "top_k",
        ),
        (
            lambda c: c.chat.completions.create(
                model="auto",
                messages=[{"role": "user", "content": [{"type": "text", "text": "x", "n": [1, -HUGE]}]}],
            ),
            "messages.0.content.0.n.1",
        ),
        (
            lambda c: c.chat.completions.create(
                model="auto",
                messages=[{"role": "user", "content": "x"}],
                tools=[{"type": "function", "function": {"name": "f", "parameters": {"maximum": HUGE}}}],
            ),
            "tools.0.function.parameters.maximum",
        ),
        # Echoed in the answer: before, written only after the upstream call, whose cost then had no answer.
        (lambda c: c.responses.create(model="auto", input="x", metadata={"n": HUGE}), "metadata.n"),
        (lambda c: c.embeddings.create(model="all-minilm-l6-v2", input=[[1, HUGE]]), "input.0.1"),
    ],
    ids=["seed", "stream-extra", "content-part", "tool-schema", "responses-metadata", "embeddings"],
)
def test_an_integer_past_64_bits_is_a_400_naming_it_before_any_upstream_call(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, call: Any, param: str
) -> None:
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    client = sdk(server.url)
    with pytest.raises(openai.BadRequestError) as e:
        call(client)
    assert e.value.body == {**e.value.body, "param": param, "code": "invalid_value"}  # type: ignore[dict-item]
    assert fresh_upstream.received == []
    if not param.startswith("input"):  # embeddings refused at parse are not chat traffic (as before)
        (row,) = svc.ledger.rows()
        assert (row["status"], row["error_type"]) == (400, "invalid_request_error")
    body = {"model": "auto", "messages": [{"role": "user", "content": "x"}], "seed": -HUGE}
    r = httpx.post(f"{server.url}/api/route", json=body)
    assert r.status_code == 400 and _envelope(r)["param"] == "seed"
    assert client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "x"}], seed=7).choices


@pytest.mark.parametrize(
    ("call", "param", "got"),
    [
        (
            lambda c: c.chat.completions.create(
                model="auto", messages=[{"role": "user", "content": "x"}], max_tokens=True
            ),
            "max_tokens",
            "a boolean",
        ),
        (
            lambda c: c.chat.completions.create(model="auto", messages=[{"role": "user", "content": "x"}], n=True),
            "n",
            "a boolean",
        ),
        (
            lambda c: c.chat.completions.create(
                model="auto", messages=[{"role": "user", "content": "x"}], extra_body={"temperature": "0.5"}
            ),
            "temperature",
            "a string",
        ),
        (
            lambda c: c.responses.create(model="auto", input="x", max_output_tokens=True),
            "max_output_tokens",
            "a boolean",
        ),
        (lambda c: c.completions.create(model="auto", prompt="x", max_tokens=True), "max_tokens", "a boolean"),
        (lambda c: c.completions.create(model="auto", prompt="x", seed=True), "seed", "a boolean"),
        (
            lambda c: c.embeddings.create(model="all-minilm-l6-v2", input="x", extra_body={"dimensions": True}),
            "dimensions",
            "a boolean",
        ),
    ],
    ids=[
        "chat-max-tokens",
        "chat-n",
        "chat-temperature",
        "responses",
        "completions",
        "completions-extra",
        "embeddings",
    ],
)
def test_a_number_of_the_wrong_type_is_a_400_before_any_upstream_call(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, call: Any, param: str, got: str
) -> None:
    """Lax parsing read `max_tokens: true` as 1 (and `n: true`, `seed: true`, "0.5"...) and sent it on: the local
    model answered what OpenAI refuses. Now every API refuses it as OpenAI does, naming the field and the type."""
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    client = sdk(server.url)
    with pytest.raises(openai.BadRequestError) as e:
        call(client)
    assert isinstance(e.value.body, dict)
    assert (e.value.body["param"], e.value.body["code"]) == (param, "invalid_type")
    assert f"but got {got} instead" in e.value.body["message"]
    assert fresh_upstream.received == []
    if param != "dimensions":  # embeddings refused at parse are not chat traffic (as above)
        (row,) = svc.ledger.rows()
        assert (row["status"], row["error_type"]) == (400, "invalid_request_error")


TOOL_FN = {"name": "f", "arguments": "{}"}


@pytest.mark.parametrize(
    ("extra", "param", "code"),
    [
        (
            {"messages": [{"role": "user", "content": "x"}, {"role": "tool", "content": "42"}]},
            "messages.1.tool_call_id",
            "missing_required_parameter",
        ),
        ({"logit_bias": {"50256": 500}}, "logit_bias.50256", "invalid_value"),
        (
            {
                "tools": [{"type": "function", "function": {"name": "f"}}],
                "tool_choice": {"type": "function", "function": {"name": "g"}},
            },
            "tool_choice.function.name",
            "invalid_value",
        ),
        ({"tools": [{"type": "function"}]}, "tools.0.function", "missing_required_parameter"),
        ({"stream": "yes"}, "stream", "invalid_type"),
        (
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {"role": "assistant", "tool_calls": [{"id": "a", "type": "function", "function": TOOL_FN}]},
                    {"role": "user", "content": "and?"},
                ]
            },
            "messages.1.tool_calls",
            "invalid_value",
        ),
        ({"messages": [{"role": "user", "content": []}]}, "messages.0.content", "empty_array"),
    ],
    ids=["tool-call-id", "logit-bias", "tool-choice", "tool-shape", "stream", "unanswered-call", "empty-content"],
)
def test_what_openai_refuses_is_a_400_even_where_the_local_model_would_answer(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, extra: dict[str, Any], param: str, code: str
) -> None:
    """The fake upstream, like llama-server, answers all of these: before, the answer depended on the route."""
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    body = {"model": "local-small", "messages": [{"role": "user", "content": "x"}], **extra}
    with pytest.raises(openai.BadRequestError) as e:
        sdk(server.url).chat.completions.create(**body)
    assert (e.value.param, e.value.code) == (param, code)
    assert fresh_upstream.received == []
    (row,) = svc.ledger.rows()
    assert (row["status"], row["requested_model"]) == (400, "local-small")
    r = httpx.post(f"{server.url}/v1/responses", json={"model": "local-small", "input": "x", "stream": "yes"})
    assert r.status_code == 400 and _envelope(r)["param"] == "stream"
    assert fresh_upstream.received == []
