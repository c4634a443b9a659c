"""`max_concurrency` through the SDK against a slow upstream on loopback, on both transports: past the cap a call
waits its turn (the default) or, with `when_full: overflow`, goes to the next adequate model; a stream holds its slot
until it ends; /api/models and /metrics show the calls in flight and waiting."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.conftest import GatewayFactory, api_config, model_now, sdk, until
from tests.fakes.upstream import FakeUpstream

EASY = [{"role": "user", "content": "easy [score=0.1]"}]  # tier 0: local-small is the cheapest adequate


def _capped(upstream: FakeUpstream, transport: str, **local: Any) -> dict[str, Any]:
    cfg = api_config(upstream.base_url)
    cfg["models"][0] = {**cfg["models"][0], "max_concurrency": 1, "transport": transport, **local}
    return cfg


def _gauge(url: str, name: str, server: str) -> float:
    m = re.search(rf'^{name}\{{server="{server}"\}} (\S+)$', httpx.get(f"{url}/metrics").text, re.M)
    return float(m.group(1)) if m else -1.0


@pytest.mark.parametrize("transport", ["auto", "litellm"])
def test_past_its_cap_a_call_waits_its_turn(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, transport: str
) -> None:
    hold = threading.Event()  # the local model's answers wait until the test has looked
    fresh_upstream.script("local-small", hold=hold)
    server, svc = gateway_factory(_capped(fresh_upstream, transport))
    client = sdk(server.url)

    def ask() -> str:
        r = client.chat.completions.with_raw_response.create(model="auto", messages=EASY)
        return r.headers["x-tiergate-model"]

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(ask)
        until(lambda: model_now(server.url)["in_flight"] == 1, "the first call in flight")
        second = pool.submit(ask)
        until(lambda: model_now(server.url)["waiting"] == 1, "the second call waiting")
        assert model_now(server.url)["status"] == "full"
        assert _gauge(server.url, "tiergate_upstream_calls_waiting", "local-small") == 1
        assert fresh_upstream.calls_for("local-small") == 1  # the upstream never saw two at once
        hold.set()
        assert (first.result(), second.result()) == ("local-small", "local-small")
    assert fresh_upstream.calls_for("flaky") == 0
    assert (model_now(server.url)["in_flight"], model_now(server.url)["status"]) == (0, "ok")
    assert [r["status"] for r in svc.ledger.rows()] == [200, 200]


@pytest.mark.parametrize("transport", ["auto", "litellm"])
def test_with_overflow_a_full_model_gives_way_to_the_next_adequate_one(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, transport: str
) -> None:
    hold = threading.Event()
    fresh_upstream.script("local-small", hold=hold)
    server, _ = gateway_factory(_capped(fresh_upstream, transport, when_full="overflow"))
    client = sdk(server.url)
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(client.chat.completions.create, model="auto", messages=EASY)
        until(lambda: model_now(server.url)["in_flight"] == 1, "the first call in flight")
        assert _gauge(server.url, "tiergate_upstream_calls_in_flight", "local-small") == 1
        why = httpx.post(f"{server.url}/api/route", json={"model": "auto", "messages": EASY}).json()
        assert why["skipped"]["local-small"] == "full (max_concurrency calls in flight)"
        r = client.chat.completions.with_raw_response.create(model="auto", messages=EASY)
        assert r.headers["x-tiergate-model"] == "flaky"  # not queued behind the held local call
        hold.set()
        assert first.result().model == "local-small"
    r = client.chat.completions.with_raw_response.create(model="auto", messages=EASY)
    assert r.headers["x-tiergate-model"] == "local-small"  # its slot came back with its answer


@pytest.mark.parametrize("transport", ["auto", "litellm"])
def test_a_stream_holds_its_slot_until_it_ends(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, transport: str
) -> None:
    hold = threading.Event()
    fresh_upstream.script("local-small", hold=hold)
    server, svc = gateway_factory(_capped(fresh_upstream, transport, when_full="overflow"))
    client = sdk(server.url)
    with client.chat.completions.with_streaming_response.create(model="auto", messages=EASY, stream=True) as s:
        assert s.headers["x-tiergate-model"] == "local-small"
        chunks = iter(s.parse())
        next(chunks)
        assert model_now(server.url)["in_flight"] == 1  # the stream is still open upstream: its slot is taken
        r = client.chat.completions.with_raw_response.create(model="auto", messages=EASY)
        assert r.headers["x-tiergate-model"] == "flaky"
        hold.set()
        list(chunks)
    until(lambda: model_now(server.url)["in_flight"] == 0, "the slot back once the stream ended")
    assert [(r["routed_model"], r["status"]) for r in svc.ledger.rows()] == [("flaky", 200), ("local-small", 200)]


@pytest.mark.parametrize("transport", ["auto", "litellm"])
def test_a_stream_whose_first_chunk_is_late_falls_back(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, transport: str
) -> None:
    fresh_upstream.script("local-small", delay_s=1.5)  # a local server with a queue ahead of this request
    cfg = api_config(fresh_upstream.base_url)
    cfg["models"][0] = {**cfg["models"][0], "first_token_timeout_s": 0.3, "transport": transport}
    server, svc = gateway_factory(cfg)
    client = sdk(server.url)
    with client.chat.completions.with_streaming_response.create(model="auto", messages=EASY, stream=True) as s:
        assert (s.headers["x-tiergate-model"], s.headers["x-tiergate-fallbacks"]) == ("flaky", "local-small")
        assert "".join(c.choices[0].delta.content or "" for c in s.parse() if c.choices).startswith("echo:")
    r = client.chat.completions.with_raw_response.create(model="auto", messages=EASY)
    assert r.headers["x-tiergate-model"] == "local-small"  # whole answers wait: only streams have a first chunk
    rows = {bool(row["stream"]): row for row in svc.ledger.rows()}
    assert rows[True]["fallbacks"] == ["local-small"] and rows[False]["routed_model"] == "local-small"
