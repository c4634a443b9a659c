"""Cascade mode through the running gateway: the official SDK in front, the fake upstream (with logprobs) behind."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from router.policy import Price
from router.pricing import Usage, cost_usd
from tests.conftest import GatewayFactory, api_config, sdk
from tests.fakes.upstream import FakeUpstream

LOCAL_PRICE = Price(input_per_mtok=0.01, output_per_mtok=0.02)  # below flaky, and not free: a draft costs


def _config(url: str) -> dict[str, Any]:
    cfg = api_config(url)
    cfg["models"][0]["price"] = LOCAL_PRICE.model_dump()
    cfg["policies"]["default"]["cascade"] = {"below_score": 0.7, "min_confidence": 0.5}
    return cfg


def _ask(client: openai.OpenAI, text: str, model: str = "auto", **kw: Any) -> Any:
    return client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}], **kw
    )


def test_a_confident_draft_is_the_answer(gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream) -> None:
    server, svc = gateway_factory(_config(fresh_upstream.base_url))
    r = _ask(sdk(server.url), "[score=0.5] name a colour [conf=0.8]")
    assert r.headers["x-tiergate-model"] == "local-small"
    assert r.headers["x-tiergate-cascade"] == "kept"
    assert float(r.headers["x-tiergate-draft-confidence"]) == pytest.approx(0.8)
    assert r.parse().choices[0].logprobs is None  # asked for the judgement, not by the client
    assert [b["model"] for b in fresh_upstream.received] == ["local-small"]
    assert fresh_upstream.received[0]["logprobs"] is True
    row = svc.ledger.rows()[-1]
    assert (row["cascade"], row["draft_model"], row["routed_model"]) == ("kept", "local-small", "local-small")
    assert row["draft_cost_usd"] == 0.0


def test_a_request_for_several_answers_is_not_cascaded(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    server, svc = gateway_factory(_config(fresh_upstream.base_url))
    r = _ask(sdk(server.url), "[score=0.5] name a colour [conf=0.8]", n=2)
    # One draft answer's confidence says nothing about the other answers, so the thresholds alone decide.
    assert "x-tiergate-cascade" not in r.headers
    assert len(r.parse().choices) == 2
    assert [(b["model"], "logprobs" in b) for b in fresh_upstream.received] == [("flaky", False)]
    assert svc.ledger.rows()[-1]["cascade"] is None


def test_an_unsure_draft_escalates_and_both_calls_are_paid_for(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    server, svc = gateway_factory(_config(fresh_upstream.base_url))
    r = _ask(sdk(server.url), "[score=0.1] name a colour [conf=0.2]")
    assert r.headers["x-tiergate-cascade"] == "escalated"
    assert r.headers["x-tiergate-model"] == "flaky"  # the thresholds chose tier 0, so the next tier up answers
    assert [b["model"] for b in fresh_upstream.received] == ["local-small", "flaky"]
    assert "logprobs" not in fresh_upstream.received[1]  # the client's own request, as it came
    row = svc.ledger.rows()[-1]
    words = Usage(5, 6)  # the fake counts words: 5 in, "echo:" and the same 5 out
    draft = cost_usd(LOCAL_PRICE, words)
    assert row["draft_cost_usd"] == pytest.approx(draft)
    answer = cost_usd(Price(input_per_mtok=0.1, output_per_mtok=0.2), words)
    assert row["cost_usd"] == pytest.approx(draft + answer)
    assert float(r.headers["x-tiergate-cost-usd"]) == pytest.approx(draft + answer, abs=1e-8)
    assert row["draft_confidence"] == pytest.approx(0.2)


def test_the_client_keeps_logprobs_it_asked_for(gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream) -> None:
    server, _ = gateway_factory(_config(fresh_upstream.base_url))
    r = _ask(sdk(server.url), "[score=0.5] hi [conf=0.9]", logprobs=True)
    assert r.headers["x-tiergate-cascade"] == "kept"
    lp = r.parse().choices[0].logprobs
    assert lp is not None and lp.content and lp.content[0].logprob == pytest.approx(-0.10536, abs=1e-4)


def test_a_failing_draft_escalates_without_the_client_seeing_it(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    server, svc = gateway_factory(_config(fresh_upstream.base_url))
    fresh_upstream.script("local-small", status=500)
    r = _ask(sdk(server.url), "[score=0.5] hi")
    assert r.headers["x-tiergate-cascade"] == "draft_failed"
    assert r.headers["x-tiergate-model"] == "flaky"
    row = svc.ledger.rows()[-1]
    assert row["status"] == 200 and row["fallbacks"] == ["local-small"] and row["draft_cost_usd"] == 0.0


def test_no_cascade_above_its_score_for_streams_or_for_a_named_model(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    server, svc = gateway_factory(_config(fresh_upstream.base_url))
    client = sdk(server.url)
    high = _ask(client, "[score=0.9] prove it [conf=0.1]")
    assert high.headers["x-tiergate-model"] == "gpt-4o" and "x-tiergate-cascade" not in high.headers
    named = client.chat.completions.with_raw_response.create(
        model="local-small", messages=[{"role": "user", "content": "hi [conf=0.1]"}]
    )
    assert named.headers["x-tiergate-model"] == "local-small" and "x-tiergate-cascade" not in named.headers
    with client.chat.completions.with_streaming_response.create(
        model="auto", messages=[{"role": "user", "content": "[score=0.1] hi [conf=0.1]"}], stream=True
    ) as s:
        assert s.headers["x-tiergate-model"] == "local-small" and "x-tiergate-cascade" not in s.headers
        list(s.parse())
    assert all("logprobs" not in b for b in fresh_upstream.received)
    assert [r["cascade"] for r in svc.ledger.rows()] == [None, None, None]


def test_when_every_escalation_fails_best_effort_answers_with_the_draft_in_hand(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    for name in ("flaky", "mid", "gpt-4o"):  # every model above the draft's tier
        fresh_upstream.script(name, status=500)
    cfg = _config(fresh_upstream.base_url)
    cfg["policies"]["reject"] = {**cfg["policies"]["default"], "on_unavailable": "reject"}
    cfg["cooldown"] = {"failures": 0}
    server, svc = gateway_factory(cfg)
    client = sdk(server.url)
    r = _ask(client, "[score=0.5] name a colour [conf=0.2]", max_tokens=3)
    assert r.headers["x-tiergate-model"] == "local-small" and r.headers["x-tiergate-degraded"] == "true"
    assert r.headers["x-tiergate-cascade"] == "escalated" and r.headers["x-tiergate-fallbacks"] == "flaky,mid,gpt-4o"
    answer = r.parse()
    assert answer.choices[0].message.content == "echo: [score=0.5] name a colour [conf=0.2]"
    assert answer.choices[0].logprobs is None  # asked for the judgement, not by the client
    row = svc.ledger.rows()[-1]
    assert (row["status"], row["routed_model"], row["cascade"], row["degraded"]) == (200, "local-small", "escalated", 1)
    # Its cost is the answer's own, once: not a draft's on top of it.
    usage = Usage(row["prompt_tokens"], row["completion_tokens"])
    assert row["draft_cost_usd"] == 0.0 and row["cost_usd"] == pytest.approx(cost_usd(LOCAL_PRICE, usage))
    calls = len(fresh_upstream.received)
    with pytest.raises(openai.InternalServerError) as refused:  # reject: the chain's failure is the answer
        _ask(client, "[score=0.5] name a colour [conf=0.2]", max_tokens=3, model="reject")
    assert refused.value.status_code == 502 and len(fresh_upstream.received) == calls + 4  # the draft, then 3
