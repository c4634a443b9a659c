"""GET /api/requests over real HTTP: the ledger's requests newest first, filtered and paged, with what each was."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from gateway.ledger import LedgerRecord
from tests.conftest import GatewayFactory, api_config, sdk
from tests.fakes.upstream import FakeUpstream


def test_recent_requests_are_listed_newest_first_filtered_and_paged(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    # Recorded first, arrived last... and a record that arrived an hour ago, recorded after the others (a backfill):
    # the log goes by arrival.
    svc.ledger.record(
        LedgerRecord(ts=time.time() + 60, request_id="late-arrival", policy="default", requested_model="x")
    )
    client = sdk(server.url)
    q = [{"role": "user", "content": "easy [score=0.1]"}]
    first = client.chat.completions.with_raw_response.create(
        model="auto", messages=q, temperature=0, extra_headers={"x-tiergate-tags": "team-a,beta"}
    )
    client.chat.completions.create(model="auto", messages=q, stream=True).close()
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=q)
    client.chat.completions.create(model="mid", messages=q)
    svc.ledger.record(LedgerRecord(ts=time.time() - 3600, request_id="backfill", policy="default", requested_model="x"))

    url = f"{server.url}/api/requests"
    ahead = {"to": str(int(time.time()) + 3600)}  # the default window ends now: this one takes in "late-arrival"
    rows = httpx.get(url, params=ahead).json()["data"]
    assert rows[0]["request_id"] == "late-arrival" and rows[-1]["request_id"] == "backfill"
    rows = rows[1:-1]
    assert [(r["routed_model"], r["status"], r["stream"]) for r in rows] == [
        ("mid", 200, False),
        (None, 404, False),
        ("local-small", 200, True),
        ("local-small", 200, False),
    ]
    oldest = rows[-1]
    assert oldest["request_id"] == first.headers["x-request-id"] and oldest["tags"] == ["team-a", "beta"]
    assert oldest["cost_usd"] == 0.0 and oldest["fallbacks"] == [] and oldest["stream"] is False
    assert "prompt" not in oldest  # prompts stay out of the log
    assert [r["status"] for r in httpx.get(url, params={"errors": "true"}).json()["data"]] == [404]
    assert len(httpx.get(url, params={"model": "local-small"}).json()["data"]) == 2
    url_x = httpx.get(url, params={"since": "30m"}).json()["data"]
    assert "backfill" not in {r["request_id"] for r in url_x}
    assert [r["request_id"] for r in httpx.get(url, params={"tag": "beta"}).json()["data"]] == [oldest["request_id"]]

    page = httpx.get(url, params={"limit": 4, **ahead}).json()
    assert len(page["data"]) == 4 and page["next_before"] == page["data"][-1]["id"]
    rest = httpx.get(url, params={"limit": 4, "before": page["next_before"], **ahead}).json()
    assert [r["request_id"] for r in rest["data"]] == [oldest["request_id"], "backfill"]
    assert rest["next_before"] is None
    bad = httpx.get(url, params={"limit": 0})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "limit"
    bad = httpx.get(url, params={"before": 2**63})  # past any id the database keeps: was a 500 from its driver
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "before"
