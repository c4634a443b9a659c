"""The lean direct path to OpenAI-compatible upstreams and the litellm path behave the same, seen through the SDK:
answers, streams with usage, what crosses the wire, fallbacks on 429 / timeouts / refused connections / context
overflow, and a client's own fault passed back as a 400."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.conftest import GatewayFactory, api_config, sdk
from tests.fakes.upstream import FakeUpstream, free_port

TRANSPORTS = ["auto", "litellm"]


def _cfg(base_url: str, transport: str, **timeouts: float) -> dict[str, Any]:
    cfg = api_config(base_url)
    for m in cfg["models"]:
        m["transport"] = transport
        if m["name"] in timeouts:
            m["timeout_s"] = timeouts[m["name"]]
    return cfg


HARD = [{"role": "user", "content": "hi there [score=0.5]"}]  # tier 1: flaky first, then mid


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_answer_usage_and_what_the_upstream_receives(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, transport: str
) -> None:
    server, svc = gateway_factory(_cfg(fresh_upstream.base_url, transport))
    r = sdk(server.url, "sk-client").chat.completions.with_raw_response.create(
        model="mid",
        messages=[{"role": "user", "content": "hi"}],
        temperature=0.2,
        max_tokens=7,
        extra_body={"top_k": 5},
    )
    body = r.parse()
    assert body.choices[0].message.content == "echo: hi" and body.model == "mid"
    assert body.usage is not None and (body.usage.prompt_tokens, body.usage.completion_tokens) == (1, 2)
    sent = fresh_upstream.received[-1]
    assert sent["model"] == "mid" and sent["messages"] == [{"role": "user", "content": "hi"}]
    assert (sent["temperature"], sent["max_tokens"], sent["top_k"]) == (0.2, 7, 5)
    (row,) = svc.ledger.rows()
    assert row["cost_usd"] == pytest.approx((1 * 0.5 + 2 * 1.5) / 1e6)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_stream_with_usage(gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, transport: str) -> None:
    server, svc = gateway_factory(_cfg(fresh_upstream.base_url, transport))
    chunks = list(
        sdk(server.url, "sk-client").chat.completions.create(
            model="mid",
            messages=[{"role": "user", "content": "one two three"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one two three"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    assert all(c.model == "mid" for c in chunks)
    assert fresh_upstream.received[-1]["stream_options"] == {"include_usage": True}
    (row,) = svc.ledger.rows()
    assert (row["prompt_tokens"], row["completion_tokens"], row["stream"]) == (3, 4, 1)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    "failure",
    [
        {"status": 429},
        {"status": 503},
        {"delay_s": 2.0},
        {
            "status": 400,
            "message": "This model's maximum context length is 16000 tokens",
            "code": "context_length_exceeded",
        },
    ],
    ids=["429", "503", "timeout", "context"],
)
def test_retryable_failures_fall_back_to_the_next_candidate(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, transport: str, failure: dict[str, Any]
) -> None:
    server, svc = gateway_factory(_cfg(fresh_upstream.base_url, transport, flaky=0.5))
    fresh_upstream.script("flaky", **failure)
    for stream in (False, True):
        r = sdk(server.url, "sk-client").chat.completions.with_raw_response.create(
            model="auto", messages=HARD, stream=stream
        )
        assert r.headers["x-tiergate-model"] == "mid" and r.headers["x-tiergate-fallbacks"] == "flaky"
        if stream:
            assert "".join(c.choices[0].delta.content or "" for c in r.parse() if c.choices).startswith("echo:")
    assert [x["fallbacks"] for x in svc.ledger.rows()] == [["flaky"], ["flaky"]]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_prompt_too_long_for_every_model_tried_is_a_400_context_length_exceeded(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, transport: str
) -> None:
    """The router's estimate (router/tokens.py) let it through, and each server counted more (a tokenizer that splits
    the text finer than the estimate assumes, as SmolLM2's does non-Latin scripts).
    That is the client's to shorten, as OpenAI reports it: not a 502 "every candidate failed" to retry, and no
    cooldown, since the models are well."""
    server, svc = gateway_factory(_cfg(fresh_upstream.base_url, transport))
    llama = "request (6030 tokens) exceeds the available context size (2048 tokens), try increasing it"
    openai_says = "This model's maximum context length is 16000 tokens"
    for name, message in (("flaky", llama), ("mid", openai_says), ("gpt-4o", openai_says)):  # the whole chain
        fresh_upstream.script(name, status=400, message=message, code="exceed_context_size_error")
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as e:
            sdk(server.url, "sk-client").chat.completions.create(model="auto", messages=HARD, stream=stream)
        assert e.value.code == "context_length_exceeded" and e.value.param == "messages"
        assert "flaky: request (6030 tokens) exceeds" in e.value.message and "mid: This model's" in e.value.message
    assert [(r["status"], r["error_type"]) for r in svc.ledger.rows()] == [(400, "invalid_request_error")] * 2
    fresh_upstream.script("flaky")
    r = sdk(server.url, "sk-client").chat.completions.with_raw_response.create(model="auto", messages=HARD)
    assert r.headers["x-tiergate-model"] == "flaky"  # not cooling down


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_answer_without_choices_is_the_models_failure(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, transport: str
) -> None:
    """A 200 with `choices: []` was passed on as the answer (the client's `choices[0]` failed on it)."""
    fresh_upstream.script("flaky", no_choices=True)
    server, svc = gateway_factory(_cfg(fresh_upstream.base_url, transport))
    client = sdk(server.url, "sk-client")
    r = client.chat.completions.with_raw_response.create(model="auto", messages=HARD)
    assert r.headers["x-tiergate-model"] == "mid" and r.headers["x-tiergate-fallbacks"] == "flaky"
    assert r.parse().choices[0].message.content == "echo: hi there [score=0.5]"
    with pytest.raises(openai.InternalServerError) as named:
        client.chat.completions.create(model="flaky", messages=HARD)
    assert named.value.status_code == 502 and "flaky: HTTP 502" in named.value.message
    assert [row["status"] for row in svc.ledger.rows()] == [200, 502]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_refused_connection_falls_back(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, transport: str
) -> None:
    cfg = _cfg(fresh_upstream.base_url, transport)
    next(m for m in cfg["models"] if m["name"] == "flaky")["api_base"] = f"http://127.0.0.1:{free_port()}/v1"
    server, _ = gateway_factory(cfg)
    r = sdk(server.url, "sk-client").chat.completions.with_raw_response.create(model="auto", messages=HARD)
    assert r.headers["x-tiergate-model"] == "mid" and r.headers["x-tiergate-fallbacks"] == "flaky"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_candidate_timing_out_is_504_and_a_client_fault_is_400(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, transport: str
) -> None:
    slow = {"flaky": 0.3, "mid": 0.3, "gpt-4o": 0.3, "local-small": 0.3}  # a tier-1 prompt's chain, best effort's
    server, _ = gateway_factory(_cfg(fresh_upstream.base_url, transport, **slow))
    for name in slow:
        fresh_upstream.script(name, delay_s=1.0)
    with pytest.raises(openai.APIStatusError) as timeout:
        sdk(server.url, "sk-client").chat.completions.create(model="auto", messages=HARD)
    assert timeout.value.status_code == 504
    fresh_upstream.script("mid", status=400, message="'logit_bias' is not supported")
    with pytest.raises(openai.BadRequestError) as bad:
        sdk(server.url, "sk-client").chat.completions.create(model="mid", messages=HARD)
    assert bad.value.code == "upstream_rejected" and "logit_bias" in bad.value.message


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_stream_event_larger_than_the_default_read_buffer(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, transport: str
) -> None:
    server, _ = gateway_factory(_cfg(fresh_upstream.base_url, transport))
    word = "x" * 300_000  # echoed back as one delta: one 300 kB server-sent event line
    chunks = list(
        sdk(server.url, "sk-client").chat.completions.create(
            model="mid", messages=[{"role": "user", "content": word}], stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: " + word
