"""POST /v1/completions (the legacy Completions API) through the running gateway and the official SDK: served as chat
with the same routing, cache, limits and ledger, and refusals of what chat cannot carry naming the field."""

from __future__ import annotations

import httpx
import openai
import pytest

from gateway.cache import MemoryStore
from gateway.completions_api import DEFAULT_MAX_TOKENS
from tests.conftest import GatewayFactory, api_config, cache_settled, sdk
from tests.fakes.upstream import FakeUpstream


def test_the_sdks_completions_create_is_routed_costed_and_booked(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    raw = sdk(server.url).completions.with_raw_response.create(
        model="mid", prompt="what is two plus two", extra_body={"top_k": 5}
    )
    r = raw.parse()
    assert r.object == "text_completion" and r.id.startswith("cmpl-") and r.model == "mid"
    [choice] = r.choices
    assert (choice.text, choice.index, choice.finish_reason) == ("echo: what is two plus two", 0, "stop")
    assert r.usage is not None and r.usage.completion_tokens == 6
    assert raw.headers["x-tiergate-model"] == "mid" and float(raw.headers["x-tiergate-cost-usd"]) > 0
    sent = fresh_upstream.received[-1]
    assert sent["messages"] == [{"role": "user", "content": "what is two plus two"}]
    # OpenAI's default for this API is sent when the app sends none; unknown parameters go on as chat's do.
    assert sent["max_tokens"] == DEFAULT_MAX_TOKENS and sent["top_k"] == 5
    [row] = svc.ledger.rows()
    assert (row["endpoint"], row["routed_model"], row["status"], row["completion_tokens"]) == (
        "completions",
        "mid",
        200,
        6,
    )
    assert row["request_id"] == raw.headers["x-request-id"]


def test_several_choices_and_a_prompt_in_a_list(gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream) -> None:
    server, _ = gateway_factory(api_config(fresh_upstream.base_url))
    r = sdk(server.url).completions.create(model="mid", prompt=["say it twice"], n=2, max_tokens=40)
    assert [(c.index, c.text) for c in r.choices] == [(0, "echo: say it twice"), (1, "echo: say it twice")]
    assert fresh_upstream.received[-1]["n"] == 2 and fresh_upstream.received[-1]["max_tokens"] == 40


def test_a_stream_is_text_completion_chunks(gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream) -> None:
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    stream = sdk(server.url).completions.create(
        model="mid", prompt="stream me please", stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert all(c.object == "text_completion" and c.id.startswith("cmpl-") for c in chunks)
    texts = [c.choices[0].text for c in chunks if c.choices]
    assert "".join(texts) == "echo: stream me please" and len(texts) > 1
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    [row] = svc.ledger.rows()
    assert (row["endpoint"], row["stream"], row["completion_tokens"]) == ("completions", True, 4)


def test_chat_and_completions_share_the_cache(gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream) -> None:
    server, svc = gateway_factory(api_config(fresh_upstream.base_url), store=MemoryStore(100))
    client = sdk(server.url)
    client.chat.completions.create(
        model="mid", messages=[{"role": "user", "content": "cached?"}], temperature=0, max_tokens=16
    )
    cache_settled(svc)
    again = client.completions.with_raw_response.create(model="mid", prompt="cached?", temperature=0)
    assert again.headers["x-tiergate-cache"] == "hit" and again.parse().choices[0].text == "echo: cached?"
    assert fresh_upstream.calls_for("mid") == 1


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"prompt": [1, 2, 3]}, "prompt", "unsupported_parameter"),
        ({"prompt": [[1, 2], [3]]}, "prompt", "unsupported_parameter"),
        ({"prompt": ["one", "two"]}, "prompt", "invalid_value"),
        ({"prompt": []}, "prompt", "invalid_value"),
        ({"prompt": "hi", "suffix": "end"}, "suffix", "unsupported_parameter"),
        ({"prompt": "hi", "echo": True}, "echo", "unsupported_parameter"),
        ({"prompt": "hi", "logprobs": 2}, "logprobs", "unsupported_parameter"),
        ({"prompt": "hi", "best_of": 3}, "best_of", "unsupported_parameter"),
        ({"prompt": "hi", "temperature": 3}, "temperature", "invalid_value"),  # chat's rules, named as written
        ({"prompt": "hi", "stop": ["a", "b", "c", "d", "e"]}, "stop", "array_above_max_length"),
        ({"prompt": 7}, "prompt", "invalid_value"),
        ({}, "prompt", "missing_required_parameter"),
    ],
)
def test_what_it_cannot_do_is_a_clear_400_on_the_record(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, body: dict[str, object], param: str, code: str
) -> None:
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    r = httpx.post(f"{server.url}/v1/completions", json={"model": "mid", **body})
    assert r.status_code == 400
    err = r.json()["error"]
    assert (err["param"], err["code"]) == (param, code), err
    assert fresh_upstream.received == []
    (row,) = svc.ledger.rows()
    assert (row["endpoint"], row["status"], row["requested_model"]) == ("completions", 400, "mid")


def test_best_of_equal_to_n_is_served(gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream) -> None:
    """`best_of` equal to `n` asks for nothing chat does not do (OpenAI's default is 1, and n's is 1)."""
    server, _ = gateway_factory(api_config(fresh_upstream.base_url))
    r = sdk(server.url).completions.create(model="mid", prompt="hi", best_of=1)
    assert r.choices[0].text == "echo: hi"
    with pytest.raises(openai.BadRequestError):
        sdk(server.url).completions.create(model="mid", prompt="hi", best_of=2, n=1)


def test_a_stream_the_upstream_cuts_ends_in_an_error_the_sdk_raises(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    """Chat's error ending passes through the translation as it is: the SDK raises it, not a short answer."""
    fresh_upstream.script("mid", cut_stream=True)  # the body ends cleanly after one word: no finish, no [DONE]
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    got: list[str] = []
    with pytest.raises(openai.APIError, match="failed mid-stream"):
        for chunk in sdk(server.url).completions.create(model="mid", prompt="a b c", stream=True):
            got.extend(c.text for c in chunk.choices)
    assert "".join(got) == "echo:"
    (row,) = svc.ledger.rows()
    assert (row["endpoint"], row["status"], row["error_type"]) == ("completions", 502, "server_error")
