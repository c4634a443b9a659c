"""POST /api/route explains a routing decision without serving it: the policy, score, chain with estimated costs,
the reason and what was passed over; errors as the request itself would get them; nothing reaches an upstream or
the ledger."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import GatewayFactory, api_config
from tests.fakes.upstream import FakeUpstream


def _ask(url: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(f"{url}/api/route", json=body)


def test_a_decision_is_explained_and_nothing_is_served(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    cfg = api_config(fresh_upstream.base_url)
    cfg["aliases"] = {"gpt-4-turbo": "default"}
    server, svc = gateway_factory(cfg)
    easy = _ask(server.url, {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}).json()
    assert (easy["policy"], easy["score"], easy["min_tier"]) == ("default", pytest.approx(0.1), 0)
    assert easy["chain"][0] == {"model": "local-small", "tier": 0, "estimated_cost_usd": 0.0}
    assert "local-small (tier 0) is the cheapest adequate" in easy["reason"]
    assert easy["skipped"]["keyless"] == "unavailable" and easy["baseline"]["model"] == "gpt-4o"
    hard = _ask(
        server.url,
        {"model": "gpt-4-turbo", "messages": [{"role": "user", "content": "prove it [score=0.9]"}], "max_tokens": 100},
    ).json()
    assert [c["model"] for c in hard["chain"]] == ["gpt-4o"] and hard["min_tier"] == 2
    assert hard["estimated_tokens"]["completion"] == 100
    assert hard["baseline"]["estimated_cost_usd"] > 0
    assert hard["chain"][0]["estimated_cost_usd"] == pytest.approx(hard["baseline"]["estimated_cost_usd"])
    tools = _ask(
        server.url,
        {
            "model": "auto",
            "messages": [{"role": "user", "content": "x [score=0.5]"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
        },
    ).json()
    assert [c["model"] for c in tools["chain"]] == ["mid", "gpt-4o"] and tools["skipped"]["flaky"] == "no tool calling"
    assert fresh_upstream.received == [] and svc.ledger.rows() == []  # explained, not served


def test_errors_are_the_ones_the_request_would_get(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    server, _ = gateway_factory(api_config(fresh_upstream.base_url))
    missing = _ask(server.url, {"model": "nope", "messages": [{"role": "user", "content": "x"}]})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
    bad = _ask(server.url, {"model": "auto"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "messages"
    refused = _ask(server.url, {"model": "strict", "messages": [{"role": "user", "content": "x [score=0.9]"}]})
    assert refused.status_code == 503 and "keyless: unavailable" in refused.json()["error"]["message"]
