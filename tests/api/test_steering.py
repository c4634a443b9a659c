"""The steering headers through the SDK (`extra_headers`) against the fake upstream, on both APIs: an app raises the
tier for a task it knows is hard, caps what a call may cost, and gets a 400 naming the header when it is malformed
or when the model it names would cost more than its cap; each request is on the record."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import GatewayFactory, api_config, sdk
from tests.fakes.upstream import FakeUpstream

EASY = [{"role": "user", "content": "easy [score=0.1]"}]
HARD = [{"role": "user", "content": "hard [score=0.9]"}]


def test_an_app_raises_the_tier_and_caps_the_cost(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_OPENAI_KEY", "sk-fake")  # gpt-4o available
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    client = sdk(server.url)
    r = client.chat.completions.with_raw_response.create(
        model="auto", messages=EASY, extra_headers={"x-tiergate-min-tier": "1"}
    )
    assert r.headers["x-tiergate-model"] == "flaky"  # the cheapest of tier 1, not the local model
    r = client.chat.completions.with_raw_response.create(
        model="auto", messages=HARD, max_tokens=100, extra_headers={"x-tiergate-max-cost-usd": "0.0005"}
    )
    assert (r.headers["x-tiergate-model"], r.headers["x-tiergate-degraded"]) == ("flaky", "true")  # gpt-4o: over it
    out = client.responses.with_raw_response.create(
        model="auto", input="easy [score=0.1]", extra_headers={"x-tiergate-min-tier": "2"}
    )
    assert out.headers["x-tiergate-model"] == "gpt-4o"
    why = httpx.post(
        f"{server.url}/api/route",
        json={"model": "auto", "messages": HARD, "max_tokens": 100},
        headers={"x-tiergate-max-cost-usd": "0.0005"},
    ).json()
    assert "over the request's max cost $0.0005" in why["skipped"]["gpt-4o"]

    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="auto", messages=EASY, extra_headers={"x-tiergate-min-tier": "ten"})
    assert e.value.body["param"] == "x-tiergate-min-tier"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="gpt-4o", messages=HARD, max_tokens=1000, extra_headers={"x-tiergate-max-cost-usd": "0.0001"}
        )
    assert e.value.code == "max_cost_exceeded" and "gpt-4o" in e.value.message
    rows = svc.ledger.rows()
    assert [r["status"] for r in rows] == [200, 200, 200, 400, 400] and rows[3]["policy"] == "default"
