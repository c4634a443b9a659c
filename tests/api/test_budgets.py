"""A model's budget over real HTTP: once gpt-4o's answers have cost its budget, hard prompts go to the strongest model
left (marked degraded), a request naming gpt-4o gets a 429 the SDK does not retry, /v1/models says so, and a second
gateway on the same ledger holds the same budget."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import GatewayFactory, api_config, sdk
from tests.fakes.upstream import FakeUpstream

HARD = [{"role": "user", "content": "prove it [score=0.9]"}]  # tier 2: only gpt-4o is adequate


def test_a_spent_model_is_passed_over_and_refused_by_name(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, tmp_path: object
) -> None:
    cfg = api_config(fresh_upstream.base_url)
    cfg["models"][3]["budget"] = {"usd": 1e-6, "per": "1h"}  # one answer of a few words spends it
    ledger = str(tmp_path) + "/shared.sqlite3"
    one, _ = gateway_factory(cfg, ledger_url=ledger)
    first = sdk(one.url).chat.completions.with_raw_response.create(model="auto", messages=HARD)
    assert first.headers["x-tiergate-model"] == "gpt-4o" and float(first.headers["x-tiergate-cost-usd"]) > 1e-6
    second = sdk(one.url).chat.completions.with_raw_response.create(model="auto", messages=HARD)
    assert second.headers["x-tiergate-model"] == "flaky" and second.headers["x-tiergate-degraded"] == "true"
    with pytest.raises(openai.RateLimitError) as e:
        sdk(one.url).with_options(max_retries=2).chat.completions.create(model="gpt-4o", messages=HARD)
    assert e.value.code == "insufficient_quota" and "'gpt-4o' has spent its budget" in e.value.message
    assert fresh_upstream.calls_for("gpt-4o") == 1  # the refusal reached no upstream, and was not retried
    gpt4o = next(m for m in httpx.get(f"{one.url}/v1/models").json()["data"] if m["id"] == "gpt-4o")
    assert gpt4o["available"] is False and gpt4o["unavailable_reason"] == "spent its budget"
    assert gpt4o["budget"]["usd"] == 1e-6 and gpt4o["budget"]["spent_usd"] > 1e-6

    why = httpx.post(f"{one.url}/api/route", json={"model": "auto", "messages": HARD}).json()
    assert why["skipped"]["gpt-4o"] == "budget spent" and why["degraded"] and why["chain"][0]["model"] == "flaky"
    status = {m["name"]: m for m in httpx.get(f"{one.url}/api/models").json()["data"]}
    assert status["gpt-4o"]["status"] == "budget spent" and status["gpt-4o"]["spent_usd"] > 1e-6
    assert (status["gpt-4o"]["budget_usd"], status["gpt-4o"]["spent_per"]) == (1e-6, "1h")
    assert status["flaky"]["status"] == "ok" and status["flaky"]["spent_per"] == "24h"  # no budget: the last day
    assert status["keyless"]["status"] == "no key"

    two, _ = gateway_factory(cfg, ledger_url=ledger)  # another worker or gateway: it reads the same ledger
    other = sdk(two.url).chat.completions.with_raw_response.create(model="auto", messages=HARD)
    assert other.headers["x-tiergate-model"] == "flaky"
