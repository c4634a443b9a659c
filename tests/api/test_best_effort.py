"""Best effort when the adequate models fail their calls, over real HTTP: the strongest weaker model answers,
marked degraded, on the record and in /api/route's answer; a policy that rejects answers the failure instead."""

from __future__ import annotations

import httpx
import openai
import pytest

from gateway.cache import MemoryStore
from tests.conftest import GatewayFactory, api_config, cache_settled, sdk
from tests.fakes.upstream import FakeUpstream

HARD = [{"role": "user", "content": "prove it [score=0.9]"}]  # tier 2: gpt-4o is the only adequate model


def test_every_adequate_model_failing_gets_a_degraded_answer_from_the_strongest_weaker_one(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    fresh_upstream.script("gpt-4o", status=500)
    cfg = api_config(fresh_upstream.base_url)
    cfg["policies"]["reject"] = {"thresholds": [0.35, 0.7], "baseline_model": "gpt-4o", "on_unavailable": "reject"}
    cfg["cooldown"] = {"failures": 0}  # every request meets the failure itself, as the ones before a cooldown do
    server, svc = gateway_factory(cfg)
    client = sdk(server.url)

    route = httpx.post(f"{server.url}/api/route", json={"model": "auto", "messages": HARD}).json()
    assert [c["model"] for c in route["chain"]] == ["gpt-4o"] and route["degraded"] is False
    # Below tier 2, strongest first, cheapest first within a tier; the keyless model is not up.
    assert [c["model"] for c in route["weaker"]] == ["flaky", "mid", "local-small"]
    tokens = route["estimated_tokens"]
    flaky_cost = (tokens["prompt"] * 0.1 + tokens["completion"] * 0.2) / 1e6  # its price per million tokens
    assert route["weaker"][0] == {"model": "flaky", "tier": 1, "estimated_cost_usd": pytest.approx(flaky_cost)}

    whole = client.chat.completions.with_raw_response.create(model="auto", messages=HARD)
    assert whole.headers["x-tiergate-model"] == "flaky" and whole.headers["x-tiergate-degraded"] == "true"
    assert whole.headers["x-tiergate-fallbacks"] == "gpt-4o"
    assert whole.parse().choices[0].message.content == "echo: prove it [score=0.9]"
    with client.chat.completions.with_streaming_response.create(model="auto", messages=HARD, stream=True) as s:
        assert s.headers["x-tiergate-model"] == "flaky" and s.headers["x-tiergate-degraded"] == "true"
        text = "".join(c.choices[0].delta.content or "" for c in s.parse() if c.choices)
    assert text == "echo: prove it [score=0.9]"

    with pytest.raises(openai.InternalServerError) as refused:  # 502: reject does not degrade
        client.chat.completions.create(model="reject", messages=HARD)
    assert refused.value.status_code == 502
    assert fresh_upstream.calls_for("gpt-4o") == 3 and fresh_upstream.calls_for("flaky") == 2

    rows = svc.ledger.rows()
    assert [(r["routed_model"], r["status"], r["degraded"], r["tier"]) for r in rows] == [
        ("flaky", 200, True, 1),
        ("flaky", 200, True, 1),
        (None, 502, False, None),
    ]
    assert [r["fallbacks"] for r in rows] == [["gpt-4o"], ["gpt-4o"], ["gpt-4o"]]
    stats = httpx.get(f"{server.url}/api/stats").json()  # what the dashboard's per-model table shows
    assert {m["model"]: m["degraded"] for m in stats["models"]} == {"flaky": 2, "(none)": 0}
    assert stats["totals"]["degraded"] == 2


def test_a_degraded_answer_is_not_stored_in_the_cache(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    """Replayed as a hit it would carry no mark, and would outlive the failure that made it for the cache's TTL."""
    fresh_upstream.script("gpt-4o", status=500, fail_times=2)
    cfg = api_config(fresh_upstream.base_url)
    cfg["cooldown"] = {"failures": 0}
    server, svc = gateway_factory(cfg, store=MemoryStore(100))
    client = sdk(server.url)
    for stream in (False, True):  # gpt-4o fails each: flaky answers, degraded, and nothing is stored
        with client.chat.completions.with_streaming_response.create(
            model="auto", messages=HARD, temperature=0, stream=stream
        ) as r:
            assert r.headers["x-tiergate-degraded"] == "true" and r.headers["x-tiergate-cache"] == "miss"
            r.read()
    cache_settled(svc)
    again = client.chat.completions.with_raw_response.create(model="auto", messages=HARD, temperature=0)
    assert again.headers["x-tiergate-model"] == "gpt-4o" and again.headers["x-tiergate-cache"] == "miss"
    assert "x-tiergate-degraded" not in again.headers
    cache_settled(svc)
    hit = client.chat.completions.with_raw_response.create(model="auto", messages=HARD, temperature=0)
    assert hit.headers["x-tiergate-cache"] == "hit" and hit.headers["x-tiergate-model"] == "gpt-4o"
