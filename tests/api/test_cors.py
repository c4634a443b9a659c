"""CORS (TIERGATE_CORS_ORIGINS, gateway/cors.py): off by default; when set, browsers on those origins pass the
preflight of every endpoint (the chat and Responses ones are served ahead of FastAPI) and may read the routing
headers of answers, errors and streams alike; other origins get nothing."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import GatewayFactory, api_config
from tests.fakes.upstream import FakeUpstream

ORIGIN = "https://chat.example.com"
CHAT = {"model": "mid", "messages": [{"role": "user", "content": "hello"}]}


def _preflight(url: str, path: str, origin: str = ORIGIN) -> httpx.Response:
    asks = {"access-control-request-method": "POST", "access-control-request-headers": "authorization,content-type"}
    return httpx.options(f"{url}{path}", headers={"origin": origin, **asks})


def test_without_origins_configured_a_browser_gets_no_cors_headers(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    server, _ = gateway_factory(api_config(fresh_upstream.base_url))
    pre = _preflight(server.url, "/v1/chat/completions")
    assert pre.status_code == 405 and "access-control-allow-origin" not in pre.headers
    r = httpx.post(f"{server.url}/v1/chat/completions", json=CHAT, headers={"origin": ORIGIN})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/responses", "/v1/embeddings", "/v1/feedback"])
def test_an_allowed_origin_passes_the_preflight_of_every_endpoint(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, path: str
) -> None:
    server, _ = gateway_factory(api_config(fresh_upstream.base_url), cors_origins=f"https://other.example, {ORIGIN}/")
    pre = _preflight(server.url, path)
    assert pre.status_code == 200, pre.text
    assert pre.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in pre.headers["access-control-allow-methods"]
    assert set(pre.headers["access-control-allow-headers"].split(",")) >= {"authorization", "content-type"}
    assert "access-control-allow-credentials" not in pre.headers  # keys travel in a header, never in cookies
    refused = _preflight(server.url, path, "https://evil.example")
    assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers


def test_answers_errors_and_streams_show_an_allowed_origin_their_routing_headers(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    server, svc = gateway_factory(api_config(fresh_upstream.base_url), cors_origins=ORIGIN)
    url, origin = f"{server.url}/v1/chat/completions", {"origin": ORIGIN}
    answer = httpx.post(url, json=CHAT, headers=origin)
    bad = httpx.post(url, json={"model": "mid"}, headers=origin)
    with httpx.stream("POST", url, json={**CHAT, "stream": True}, headers=origin) as streamed:
        streamed.read()
    models = httpx.get(f"{server.url}/v1/models", headers=origin)
    assert [r.status_code for r in (answer, bad, streamed, models)] == [200, 400, 200, 200]
    for r in (answer, bad, streamed, models):
        assert r.headers["access-control-allow-origin"] == ORIGIN
        exposed = set(r.headers["access-control-expose-headers"].split(", "))
        assert {"x-request-id", "x-tiergate-model", "x-tiergate-cost-usd", "retry-after"} <= exposed
    assert answer.headers["x-tiergate-model"] == "mid"
    assert [row["status"] for row in svc.ledger.rows()] == [200, 400, 200]  # preflights are no requests


def test_a_star_lets_any_origin_in(gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream) -> None:
    server, _ = gateway_factory(api_config(fresh_upstream.base_url), cors_origins="*")
    pre = _preflight(server.url, "/v1/chat/completions", "https://anywhere.example")
    assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "*"
