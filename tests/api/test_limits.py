"""Per-key limits through running gateways and the official SDK: requests per minute shared by two gateways on one
ledger (as `tiergate serve --workers 2` runs), and a budget that stops a key once its spend reaches it."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from gateway.auth import digest
from tests.conftest import GatewayFactory, api_config
from tests.fakes.upstream import FakeUpstream

KEY, ADMIN = "tg-limited-app-key", "tg-ops-admin-key"
KEY_ID = "key-" + digest(KEY)[:16]
Q = [{"role": "user", "content": "two words"}]


def _config(url: str, **limits: Any) -> dict[str, Any]:
    cfg = api_config(url)
    cfg["keys"] = [
        {"name": "app", "sha256": digest(KEY), **limits},
        {"name": "ops", "sha256": digest(ADMIN), "admin": True},
    ]
    return cfg


def test_two_gateways_on_one_ledger_hold_a_key_to_one_requests_per_minute(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, ledger_url: str
) -> None:
    cfg = _config(fresh_upstream.base_url, rpm=3)
    (one, svc_one), (two, svc_two) = (
        gateway_factory(cfg, ledger_url=ledger_url),
        gateway_factory(cfg, ledger_url=ledger_url),
    )
    first = openai.OpenAI(base_url=f"{one.url}/v1", api_key=KEY, max_retries=0)
    first.chat.completions.create(model="mid", messages=Q)
    first.embeddings.create(model="all-minilm-l6-v2", input=["embeddings count too"])
    svc_one.ledger.flush()  # committed, as the writer does within its linger

    second = openai.OpenAI(base_url=f"{two.url}/v1", api_key=KEY, max_retries=0)
    second.chat.completions.create(model="mid", messages=Q)  # the third of three in this minute
    with pytest.raises(openai.RateLimitError) as over:
        second.chat.completions.create(model="mid", messages=Q)
    assert over.value.code == "rate_limit_exceeded" and "limit 3, used 3" in over.value.message
    assert 1 <= int(over.value.response.headers["retry-after"]) <= 60
    assert over.value.response.headers["x-ratelimit-limit-requests"] == "3"
    assert len(fresh_upstream.received) == 2  # the refused call went nowhere

    # Another key is not held to this one's limit.
    openai.OpenAI(base_url=f"{two.url}/v1", api_key=ADMIN, max_retries=0).chat.completions.create(
        model="mid", messages=Q
    )
    refused = svc_two.ledger.rows("status = 429")  # its writer committed it
    assert [(r["key_id"], r["requested_model"], r["error_type"]) for r in refused] == [(KEY_ID, "mid", "requests")]


def test_a_key_that_spent_its_budget_is_refused_and_the_sdk_does_not_retry(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    # "mid" costs $0.50 / $1.50 per million tokens: the first call alone spends more than this budget.
    server, svc = gateway_factory(_config(fresh_upstream.base_url, budget={"usd": 1e-7, "per": "1d"}))
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY)  # the SDK's default: two retries on a 429
    client.chat.completions.create(model="mid", messages=Q)
    with pytest.raises(openai.RateLimitError) as spent:
        client.chat.completions.create(model="mid", messages=Q, stream=True)
    assert spent.value.code == "insufficient_quota" and "in the last 1d" in spent.value.message
    assert len(fresh_upstream.received) == 1
    rows = svc.ledger.rows()
    assert [(r["status"], r["error_type"]) for r in rows] == [(200, None), (429, "insufficient_quota")]  # no retries
    assert rows[1]["policy"] == "default"  # booked under the policy its model is served by, as the answer was
    assert rows[0]["cost_usd"] > 1e-7 and rows[1]["stream"]

    # An admin sees each key's limits and use as the limits count them; a client key may not.
    books = httpx.get(f"{server.url}/api/keys", headers={"authorization": f"Bearer {ADMIN}"}).json()["data"]
    app, ops = books
    assert (app["name"], app["key_id"], app["rpm"], app["budget_usd"], app["spent_per"]) == (
        "app",
        KEY_ID,
        None,
        1e-7,
        "1d",
    )
    assert app["requests_last_minute"] == 1 and app["spent_usd"] == pytest.approx(rows[0]["cost_usd"])
    assert (ops["admin"], ops["requests_last_minute"], ops["spent_usd"], ops["spent_per"]) == (True, 0, 0.0, "24h")
    assert httpx.get(f"{server.url}/api/keys", headers={"authorization": f"Bearer {KEY}"}).status_code == 403
    # ... but each key reads its own, and only its own (GET /v1/key)
    mine = httpx.get(f"{server.url}/v1/key", headers={"authorization": f"Bearer {KEY}"}).json()
    assert {k: v for k, v in mine.items() if k != "object"} == app and mine["object"] == "key"
    assert httpx.get(f"{server.url}/v1/key", headers={"authorization": f"Bearer {ADMIN}"}).json()["name"] == "ops"
    assert httpx.get(f"{server.url}/v1/key").status_code == 401


def test_a_key_over_its_tokens_per_minute_waits(gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream) -> None:
    server, svc = gateway_factory(_config(fresh_upstream.base_url, tpm=4))
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0)
    first = client.chat.completions.create(model="mid", messages=Q)  # admitted at 0 tokens; it uses more than 4
    assert first.usage is not None and first.usage.total_tokens > 4
    with pytest.raises(openai.RateLimitError) as over:
        client.embeddings.create(model="all-minilm-l6-v2", input=["embeddings are held to it too"])
    assert over.value.body["type"] == "tokens" and over.value.response.headers["x-ratelimit-limit-tokens"] == "4"  # type: ignore[index]
    used = f"used {first.usage.total_tokens}."
    assert used in over.value.message
    books = httpx.get(f"{server.url}/api/keys", headers={"authorization": f"Bearer {ADMIN}"}).json()["data"]
    assert (books[0]["tpm"], books[0]["tokens_last_minute"]) == (4, first.usage.total_tokens)
    assert [(r["endpoint"], r["error_type"]) for r in svc.ledger.rows("status = 429")] == [("embeddings", "tokens")]


def test_the_responses_api_is_held_to_the_same_limits(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    server, svc = gateway_factory(_config(fresh_upstream.base_url, rpm=1))
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0)
    assert client.responses.create(model="mid", input="one").output_text == "echo: one"
    with pytest.raises(openai.RateLimitError) as over:
        client.responses.create(model="mid", input="two")
    assert over.value.code == "rate_limit_exceeded"
    assert [(r["endpoint"], r["status"]) for r in svc.ledger.rows()] == [("responses", 200), ("responses", 429)]


def test_an_open_gateway_has_no_key_to_describe(gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream) -> None:
    server, _ = gateway_factory(api_config(fresh_upstream.base_url))
    r = httpx.get(f"{server.url}/v1/key")
    assert r.status_code == 404 and r.json()["error"]["code"] == "no_keys"
