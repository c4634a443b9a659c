"""Cooldowns over real HTTP: a model that keeps failing is passed over by routing, shown as cooling down in
/v1/models, /readyz and /metrics, and taken back once its cooldown is over and it answers again."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import GatewayFactory, api_config, sdk
from tests.fakes.upstream import FakeUpstream, free_port

MEDIUM = [{"role": "user", "content": "medium [score=0.5]"}]  # tier 1: `flaky` first, then `mid`


def _model(url: str, name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = httpx.get(f"{url}/v1/models").json()["data"]
    return next(m for m in found if m["id"] == name)


def test_a_failing_model_is_skipped_while_it_cools_down_then_tried_again(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    fresh_upstream.script("flaky", status=503, fail_times=2)  # down for two calls, then back
    cfg = {**api_config(fresh_upstream.base_url), "cooldown": {"failures": 2, "window_s": 60, "cooldown_s": 1}}
    server, svc = gateway_factory(cfg)
    client = sdk(server.url)
    for _ in range(2):
        r = client.chat.completions.with_raw_response.create(model="auto", messages=MEDIUM)
        assert r.headers["x-tiergate-model"] == "mid" and r.headers["x-tiergate-fallbacks"] == "flaky"
    r = client.chat.completions.with_raw_response.create(model="auto", messages=MEDIUM)
    assert r.headers["x-tiergate-model"] == "mid" and "x-tiergate-fallbacks" not in r.headers
    assert fresh_upstream.calls_for("flaky") == 2  # the third request lost no time on it

    flaky = _model(server.url, "flaky")
    assert flaky["available"] is False and "cooling down" in flaky["unavailable_reason"]
    assert "HTTP 503" in flaky["unavailable_reason"] and flaky["cooldown_until"] >= int(time.time())
    assert httpx.get(f"{server.url}/readyz").json()["checks"]["cooling_models"] == ["flaky"]
    status = next(m for m in httpx.get(f"{server.url}/api/models").json()["data"] if m["name"] == "flaky")
    assert status["status"] == "cooling down" and status["servers_cooling"][0]["server"] == "flaky"
    assert 'tiergate_model_cooldowns_total{model="flaky"} 1.0' in httpx.get(f"{server.url}/metrics").text
    assert [row["fallbacks"] for row in svc.ledger.rows()] == [["flaky"], ["flaky"], []]

    deadline = time.monotonic() + 10
    while not _model(server.url, "flaky")["available"]:
        assert time.monotonic() < deadline, "the cooldown did not end"
        time.sleep(0.05)
    r = client.chat.completions.with_raw_response.create(model="auto", messages=MEDIUM)
    assert r.headers["x-tiergate-model"] == "flaky"  # on probation, it answered: back in the rotation
    assert httpx.get(f"{server.url}/readyz").json()["checks"]["cooling_models"] == []


def test_a_dead_upstream_behind_litellm_cools_down_and_streams_skip_it(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    cfg = api_config(fresh_upstream.base_url)
    dead = free_port()  # nothing listens: every call is a refused connection, as litellm maps it
    cfg["models"][1] = {**cfg["models"][1], "api_base": f"http://127.0.0.1:{dead}/v1", "transport": "litellm"}
    cfg["cooldown"] = {"failures": 2, "window_s": 60, "cooldown_s": 300}
    server, svc = gateway_factory(cfg)
    client = sdk(server.url)
    for _ in range(2):
        r = client.chat.completions.with_raw_response.create(model="auto", messages=MEDIUM)
        assert r.headers["x-tiergate-fallbacks"] == "flaky"
    with client.chat.completions.with_streaming_response.create(model="auto", messages=MEDIUM, stream=True) as s:
        assert s.headers["x-tiergate-model"] == "mid" and "x-tiergate-fallbacks" not in s.headers
        assert "echo" in "".join(c.choices[0].delta.content or "" for c in s.parse() if c.choices)
    # A request naming the model still goes to it (the client asked for that model and no other): a 502 from
    # trying, not a 503 refusal.
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model="flaky", messages=MEDIUM)
    assert e.value.status_code == 502
    assert [r["fallbacks"] for r in svc.ledger.rows()] == [["flaky"], ["flaky"], [], ["flaky"]]


@pytest.mark.parametrize("transport", ["auto", "litellm"])
def test_a_429_with_retry_after_cools_the_model_down_at_once_for_that_long(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, transport: str
) -> None:
    fresh_upstream.script("flaky", status=429, retry_after="120", message="rate limit reached")
    cfg = api_config(fresh_upstream.base_url)
    cfg["models"][1]["transport"] = transport
    server, _ = gateway_factory(cfg)  # the default cooldown: 3 failures, 30 s
    client = sdk(server.url)
    first = client.chat.completions.with_raw_response.create(model="auto", messages=MEDIUM)
    assert first.headers["x-tiergate-fallbacks"] == "flaky"
    second = client.chat.completions.with_raw_response.create(model="auto", messages=MEDIUM)
    assert second.headers["x-tiergate-model"] == "mid" and "x-tiergate-fallbacks" not in second.headers
    assert fresh_upstream.calls_for("flaky") == 1
    flaky = _model(server.url, "flaky")
    assert "HTTP 429" in flaky["unavailable_reason"]
    assert time.time() + 100 < flaky["cooldown_until"] <= time.time() + 121  # the server's 120 s, not 30


def test_a_500_to_a_request_with_parameters_the_gateway_passed_on_unchecked_cools_nothing(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    """As llama-server answers `reasoning_format: "nonsense"`: a 500 about the request's own (unknown to the gateway)
    parameter, or content. Counted, repeating it cooled the local model down for every client."""
    fresh_upstream.script("local-small", status=500)
    cfg = {**api_config(fresh_upstream.base_url), "cooldown": {"failures": 2, "window_s": 60, "cooldown_s": 60}}
    server, _ = gateway_factory(cfg)
    client = sdk(server.url).with_options(max_retries=0)
    easy = [{"role": "user", "content": "hi"}]
    for _ in range(3):
        with pytest.raises(openai.APIStatusError) as e:
            client.chat.completions.create(model="local-small", messages=easy, extra_body={"reasoning_format": "x"})
        assert e.value.status_code == 502
        # The server's own words reach the client, who can act on them; and what the gateway suspects.
        said = e.value.response.json()["error"]["message"]
        assert "local-small: HTTP 500 (" in said and "passes on unchecked" in said
    assert httpx.get(f"{server.url}/readyz").json()["checks"]["cooling_models"] == []
    # Content the gateway passes on without knowing it: llama-server answers a `video_url` part and a `custom` tool
    # call with a 500 too.
    video: Any = [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": "https://x/v.mp4"}}]}]
    custom: Any = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "type": "custom", "custom": {"name": "f"}}]},
        {"role": "tool", "tool_call_id": "c", "content": "done"},
    ]
    for messages in (video, video, custom, custom):
        with pytest.raises(openai.APIStatusError) as e:
            client.chat.completions.create(model="local-small", messages=messages)
        assert e.value.status_code == 502
    assert httpx.get(f"{server.url}/readyz").json()["checks"]["cooling_models"] == []
    for _ in range(2):  # the same failure of a request the gateway knows in full: the server's fault, as before
        with pytest.raises(openai.APIStatusError) as e:
            client.chat.completions.create(model="local-small", messages=easy)
        said = e.value.response.json()["error"]["message"]
        assert said == "Every candidate model failed upstream (local-small: HTTP 500)."  # the operator's business
    assert httpx.get(f"{server.url}/readyz").json()["checks"]["cooling_models"] == ["local-small"]
