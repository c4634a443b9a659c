"""A policy's `private_data` through the SDK, against the fake upstream on loopback: a prompt holding an email
address or a card number stays on the local model whatever its score, a request naming a hosted model with one is
refused with a 400 naming the kind (never the data), `reject` refuses it outright, and the ledger keeps the kinds."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.conftest import GatewayFactory, api_config, sdk
from tests.fakes.upstream import FakeUpstream

HARD_PRIVATE = [{"role": "user", "content": "[score=0.9] Draft a reply to jane.doe@example.com about her refund."}]
HARD = [{"role": "user", "content": "[score=0.9] Draft a reply about a refund."}]


def _guarded(upstream: FakeUpstream) -> dict[str, Any]:
    cfg = api_config(upstream.base_url)
    cfg["policies"]["default"]["private_data"] = {"detect": ["email", "card"]}
    cfg["policies"]["strict"]["private_data"] = {"action": "reject"}
    return cfg


def test_private_prompts_stay_local_and_named_hosted_models_are_refused(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_OPENAI_KEY", "sk-fake")
    server, svc = gateway_factory(_guarded(fresh_upstream))
    client = sdk(server.url)
    r = client.chat.completions.with_raw_response.create(model="auto", messages=HARD)
    assert r.headers["x-tiergate-model"] == "gpt-4o" and "x-tiergate-private-data" not in r.headers
    r = client.chat.completions.with_raw_response.create(model="auto", messages=HARD_PRIVATE)
    assert r.headers["x-tiergate-model"] == "local-small"  # best effort: the strongest local model
    assert (r.headers["x-tiergate-private-data"], r.headers["x-tiergate-degraded"]) == ("email", "true")
    with client.chat.completions.with_streaming_response.create(model="auto", messages=HARD_PRIVATE, stream=True) as s:
        assert s.headers["x-tiergate-model"] == "local-small"
        list(s.parse())
    why = httpx.post(f"{server.url}/api/route", json={"model": "auto", "messages": HARD_PRIVATE}).json()
    assert why["skipped"]["gpt-4o"] == "hosted, and the request holds private data (email)"

    card = [{"role": "user", "content": "Is 4111 1111 1111 1111 a test card?"}]
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="gpt-4o", messages=card)
    err = e.value.body
    assert isinstance(err, dict) and (err["code"], err["param"]) == ("private_data", "model")
    assert "card" in err["message"] and "4111" not in err["message"]
    assert fresh_upstream.calls_for("gpt-4o") == 1  # only the first, private-free request reached it
    rows = svc.ledger.rows()
    assert [(x["routed_model"], x["status"], x["private_data"]) for x in rows] == [
        ("gpt-4o", 200, None),
        ("local-small", 200, ",email,"),
        ("local-small", 200, ",email,"),
        (None, 400, ",card,"),
    ]


def test_reject_refuses_private_data_outright(gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream) -> None:
    server, _ = gateway_factory(_guarded(fresh_upstream))
    key = [{"role": "user", "content": "Why does AKIAIOSFODNN7EXAMPLE fail to sign my S3 request?"}]
    with pytest.raises(openai.BadRequestError) as e:
        sdk(server.url).responses.create(model="strict", input=key[0]["content"])  # the Responses API too
    err = e.value.body
    assert isinstance(err, dict) and err["code"] == "private_data" and "secret" in err["message"]
    assert fresh_upstream.received == []


def test_stats_count_the_requests_with_private_data(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    server, _ = gateway_factory(_guarded(fresh_upstream))
    client = sdk(server.url)
    client.chat.completions.create(model="auto", messages=HARD_PRIVATE)
    client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "[score=0.1] hi"}])
    stats = httpx.get(f"{server.url}/api/stats").json()
    local = next(m for m in stats["models"] if m["model"] == "local-small")
    assert (local["requests"], local["private_data"], stats["totals"]["private_data"]) == (2, 1, 1)
    assert "private_data" in httpx.get(f"{server.url}/api/stats.csv").text.splitlines()[0].split(",")
