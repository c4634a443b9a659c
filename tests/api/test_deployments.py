"""A model served by two upstream servers (two fake upstreams on their own ports), through the SDK: calls take turns,
a failing server gives way to the model's other server before any other model, and is passed over once it cools
down; /v1/models counts the servers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import GatewayFactory, api_config, model_now, sdk
from tests.fakes.upstream import FakeUpstream

MEDIUM = [{"role": "user", "content": "medium [score=0.5]"}]  # tier 1: `flaky` is the cheapest


@pytest.fixture
def second() -> Iterator[FakeUpstream]:
    up = FakeUpstream().start()
    yield up
    up.stop()


def _two_servers(first: FakeUpstream, second: FakeUpstream, transport: str = "auto") -> dict[str, Any]:
    cfg = api_config(first.base_url)
    cfg["models"][1] = {**cfg["models"][1], "deployments": [{"api_base": second.base_url}], "transport": transport}
    cfg["cooldown"] = {"failures": 2, "window_s": 60, "cooldown_s": 300}
    return cfg


@pytest.mark.parametrize("transport", ["auto", "litellm"])
def test_calls_take_turns_over_a_models_servers(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, second: FakeUpstream, transport: str
) -> None:
    server, svc = gateway_factory(_two_servers(fresh_upstream, second, transport))
    client = sdk(server.url)
    for _ in range(3):
        r = client.chat.completions.with_raw_response.create(model="auto", messages=MEDIUM)
        assert r.headers["x-tiergate-model"] == "flaky" and "x-tiergate-fallbacks" not in r.headers
    with client.chat.completions.with_streaming_response.create(model="auto", messages=MEDIUM, stream=True) as s:
        assert s.headers["x-tiergate-model"] == "flaky"
        list(s.parse())
    assert (fresh_upstream.calls_for("flaky"), second.calls_for("flaky")) == (2, 2)
    flaky = next(m for m in httpx.get(f"{server.url}/v1/models").json()["data"] if m["id"] == "flaky")
    assert (flaky["deployments"], flaky["deployments_cooling"], flaky["available"]) == (2, 0, True)
    assert {r["routed_model"] for r in svc.ledger.rows()} == {"flaky"}


def test_a_failing_server_gives_way_to_its_models_other_server_then_cools_down(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, second: FakeUpstream
) -> None:
    second.script("flaky", status=503)
    server, svc = gateway_factory(_two_servers(fresh_upstream, second))
    client = sdk(server.url)
    models = []
    for _ in range(6):
        r = client.chat.completions.with_raw_response.create(model="auto", messages=MEDIUM)
        models.append((r.headers["x-tiergate-model"], r.headers.get("x-tiergate-fallbacks")))
    # Turns 2 and 4 go to the failing server and are answered by the first one; then it cools down.
    assert models == [("flaky", None), ("flaky", "flaky"), ("flaky", None), ("flaky", "flaky")] + [("flaky", None)] * 2
    assert (fresh_upstream.calls_for("flaky"), second.calls_for("flaky")) == (6, 2)
    assert fresh_upstream.calls_for("mid") == 0  # the next model was never needed
    flaky = next(m for m in httpx.get(f"{server.url}/v1/models").json()["data"] if m["id"] == "flaky")
    assert (flaky["deployments_cooling"], flaky["available"]) == (1, True)
    assert httpx.get(f"{server.url}/readyz").json()["checks"]["cooling_models"] == ["flaky#2"]
    assert 'tiergate_model_cooldowns_total{model="flaky#2"} 1.0' in httpx.get(f"{server.url}/metrics").text
    assert [r["fallbacks"] for r in svc.ledger.rows()][:4] == [[], ["flaky"], [], ["flaky"]]


def test_weights_share_the_calls_between_real_servers(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, second: FakeUpstream
) -> None:
    cfg = _two_servers(fresh_upstream, second)
    cfg["models"][1] = {**cfg["models"][1], "weight": 3, "balance": "weighted"}
    cfg["models"][1]["deployments"][0]["weight"] = 1
    server, _ = gateway_factory(cfg)
    client = sdk(server.url)
    for _ in range(8):
        client.chat.completions.create(model="auto", messages=MEDIUM)
    assert (fresh_upstream.calls_for("flaky"), second.calls_for("flaky")) == (6, 2)


def test_api_models_shows_the_cap_of_all_a_models_servers(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, second: FakeUpstream
) -> None:
    """`in_flight` sums the servers' calls, so the cap beside it is theirs summed: 2 (the model's own server) + 3 (a
    deployment's own cap). It showed the model's 2, and the dashboard then read "4 / 2" for a model with room."""
    cfg = _two_servers(fresh_upstream, second)
    cfg["models"][1] = {
        **cfg["models"][1],
        "max_concurrency": 2,
        "deployments": [{"api_base": second.base_url, "max_concurrency": 3}],
    }
    server, _ = gateway_factory(cfg)
    flaky = model_now(server.url, "flaky")
    assert (flaky["servers"], flaky["max_concurrency"], flaky["in_flight"]) == (2, 5, 0)
