"""`retry` through the SDK against the fake upstream on loopback, on both transports: a passing failure is tried
again on the same model before the next (a cheap model is not given up for a dearer one over one 503), a long
Retry-After is not waited for, and the ledger lists every failed try."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import GatewayFactory, api_config, sdk
from tests.fakes.upstream import FakeUpstream

MEDIUM = [{"role": "user", "content": "medium [score=0.5]"}]  # tier 1: `flaky` is the cheapest, then `mid`


def _retrying(upstream: FakeUpstream, transport: str) -> dict[str, Any]:
    cfg = api_config(upstream.base_url)
    cfg["models"][1] = {**cfg["models"][1], "transport": transport}
    cfg["retry"] = {"attempts": 2, "backoff_s": 0.01}
    return cfg


@pytest.mark.parametrize("transport", ["auto", "litellm"])
def test_a_passing_failure_is_retried_on_the_same_model(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, transport: str
) -> None:
    fresh_upstream.script("flaky", status=503, fail_times=2)
    server, svc = gateway_factory(_retrying(fresh_upstream, transport))
    r = sdk(server.url).chat.completions.with_raw_response.create(model="auto", messages=MEDIUM)
    assert r.headers["x-tiergate-model"] == "flaky" and r.headers["x-tiergate-fallbacks"] == "flaky,flaky"
    assert (fresh_upstream.calls_for("flaky"), fresh_upstream.calls_for("mid")) == (3, 0)
    (row,) = svc.ledger.rows()
    assert (row["routed_model"], row["status"], row["fallbacks"]) == ("flaky", 200, ["flaky", "flaky"])


@pytest.mark.parametrize("transport", ["auto", "litellm"])
def test_a_retry_after_longer_than_max_wait_moves_on_at_once(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, transport: str
) -> None:
    fresh_upstream.script("flaky", status=429, fail_times=1, retry_after="120")
    server, _ = gateway_factory(_retrying(fresh_upstream, transport))
    client = sdk(server.url)
    r = client.chat.completions.with_raw_response.create(model="auto", messages=MEDIUM)
    assert r.headers["x-tiergate-model"] == "mid" and fresh_upstream.calls_for("flaky") == 1
    with client.chat.completions.with_streaming_response.create(model="auto", messages=MEDIUM, stream=True) as s:
        assert s.headers["x-tiergate-model"] == "mid"  # flaky cools down for its Retry-After
        list(s.parse())
