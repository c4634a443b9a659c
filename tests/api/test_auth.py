"""API keys through the running gateway: the official SDK and plain HTTP, with keys in the config and without."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import openai
import pytest

from gateway.auth import digest
from tests.conftest import GatewayFactory, api_config, sdk
from tests.fakes.upstream import FakeUpstream

CLIENT_KEY, ADMIN_KEY = "tg-client-secret-1", "tg-admin-secret-2"


def _config(url: str) -> dict[str, Any]:
    cfg = api_config(url)
    cfg["keys"] = [
        {"name": "app", "sha256": digest(CLIENT_KEY)},
        {"name": "ops", "sha256": digest(ADMIN_KEY), "admin": True},
    ]
    return cfg


def _basic(key: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"anyone:{key}".encode()).decode()}


def test_a_call_without_a_known_key_is_401_and_reaches_nothing(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    server, svc = gateway_factory(_config(fresh_upstream.base_url))
    q = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.AuthenticationError) as wrong:
        sdk(server.url, "tg-not-a-key-at-all").chat.completions.create(model="auto", messages=q)
    assert wrong.value.status_code == 401 and wrong.value.code == "invalid_api_key"
    assert "tg-...-all" in wrong.value.message  # enough to tell keys apart, not enough to use one
    missing = httpx.post(f"{server.url}/v1/chat/completions", json={"model": "auto", "messages": q})
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["error"]["code"] == "invalid_api_key" and missing.headers["x-request-id"].startswith("tg-")
    for path in ("/v1/models", "/v1/embeddings", "/v1/feedback", "/v1/nowhere"):
        assert httpx.post(f"{server.url}{path}", json={}).status_code in (401,), path
    assert fresh_upstream.received == []
    assert svc.ledger.rows() == []  # refused before it was read: callers without a key cannot fill the ledger


def test_a_known_key_is_served_and_its_calls_are_booked_under_it(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    server, svc = gateway_factory(_config(fresh_upstream.base_url))
    client = sdk(server.url, CLIENT_KEY)
    r = client.chat.completions.with_raw_response.create(model="mid", messages=[{"role": "user", "content": "a b"}])
    assert r.parse().choices[0].message.content == "echo: a b"
    assert client.models.list().data[0].id == "auto"
    assert client.embeddings.create(model="all-minilm-l6-v2", input=["x"]).data
    by_basic = httpx.post(
        f"{server.url}/v1/embeddings", json={"model": "all-minilm-l6-v2", "input": "y"}, headers=_basic(CLIENT_KEY)
    )
    assert by_basic.status_code == 200
    rows = svc.ledger.rows()
    # The chat call and both embeddings: one key, one id, however it was sent.
    assert [r["key_id"] for r in rows] == ["key-" + digest(CLIENT_KEY)[:16]] * 3
    # The health checks and the API description stay open, for orchestrators and SDK generators.
    for path in ("/healthz", "/readyz", "/openapi.json"):
        assert httpx.get(f"{server.url}{path}").status_code == 200, path
    for path in ("/healthz", "/readyz"):
        assert httpx.head(f"{server.url}{path}").status_code == 200, path


def test_the_books_need_an_admin_key_and_a_browser_is_asked_for_one(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    server, _ = gateway_factory(_config(fresh_upstream.base_url))
    for path in ("/dashboard", "/api/stats", "/api/stats.csv", "/api/keys", "/api/models", "/api/requests", "/metrics"):
        anon = httpx.get(f"{server.url}{path}")
        assert anon.status_code == 401, path
        assert anon.headers["www-authenticate"].startswith('Basic realm="tiergate"'), path  # the browser's prompt
        app = httpx.get(f"{server.url}{path}", headers={"authorization": f"Bearer {CLIENT_KEY}"})
        assert app.status_code == 403 and app.json()["error"]["code"] == "not_admin", path
        assert httpx.get(f"{server.url}{path}", headers={"authorization": f"Bearer {ADMIN_KEY}"}).status_code == 200
        assert httpx.get(f"{server.url}{path}", headers=_basic(ADMIN_KEY)).status_code == 200, path
    assert httpx.get(f"{server.url}/dashboard", headers=_basic(CLIENT_KEY)).status_code == 403
    explain = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    assert httpx.post(f"{server.url}/api/route", json=explain).status_code == 401
    client = httpx.post(f"{server.url}/api/route", json=explain, headers={"authorization": f"Bearer {CLIENT_KEY}"})
    assert client.status_code == 403
    admin = httpx.post(f"{server.url}/api/route", json=explain, headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert admin.status_code == 200 and admin.json()["chain"]
    # An admin key is also a client key.
    assert sdk(server.url, ADMIN_KEY).models.list().data


def test_without_keys_the_gateway_stays_open(gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream) -> None:
    server, _ = gateway_factory(api_config(fresh_upstream.base_url))
    assert httpx.get(f"{server.url}/v1/models").status_code == 200
    assert httpx.get(f"{server.url}/api/stats").status_code == 200


def test_a_key_held_to_its_policies_routes_by_the_first_and_may_not_leave_them(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    cfg = _config(fresh_upstream.base_url)
    cfg["keys"].append({"name": "batch", "sha256": digest("tg-batch-key-3"), "policies": ["strict"]})
    server, svc = gateway_factory(cfg)
    batch = sdk(server.url, "tg-batch-key-3")
    r = batch.chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user", "content": "hi"}])
    assert r.headers["x-tiergate-policy"] == "strict"  # `auto` means the key's own policy
    with pytest.raises(openai.PermissionDeniedError) as other:
        batch.chat.completions.create(model="default", messages=[{"role": "user", "content": "hi"}])
    assert other.value.code == "policy_not_allowed" and "strict" in other.value.message
    # A named model is judged by the key's policy: strict allows only local-small and keyless.
    with pytest.raises(openai.PermissionDeniedError) as direct:
        batch.chat.completions.create(model="mid", messages=[{"role": "user", "content": "hi"}])
    assert direct.value.code == "model_not_allowed"
    # However the key is sent, it is the same key with the same limits.
    basic = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "default", "messages": [{"role": "user", "content": "hi"}]},
        headers=_basic("tg-batch-key-3"),
    )
    assert basic.status_code == 403
    rows = svc.ledger.rows()
    assert {r["key_id"] for r in rows} == {"key-" + digest("tg-batch-key-3")[:16]}
    assert [r["status"] for r in rows] == [200, 403, 403, 403]
    # What it may name is what it is shown: `auto` is its policy, and the other policies are not listed.
    listed = {m.id: m for m in batch.models.list().data}
    assert listed["auto"].model_extra["policy"] == "strict" and "strict" in listed and "default" not in listed
    with pytest.raises(openai.NotFoundError):
        batch.models.retrieve("default")
    # Keys without `policies` are unchanged: `auto` is the default policy.
    free = sdk(server.url, CLIENT_KEY).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "hi"}]
    )
    assert free.headers["x-tiergate-policy"] == "default"
    assert {"default", "strict"} <= {m.id for m in sdk(server.url, CLIENT_KEY).models.list().data}
