"""The response cache through the openai SDK, against the machine's real Redis (each test under its own prefix)."""

from __future__ import annotations

import time
import uuid

import httpx
import openai
import orjson
import pytest

from gateway.cache import MemoryStore, RedisStore
from tests.conftest import GatewayFactory, api_config, cache_settled, sdk
from tests.fakes.redis_server import OwnRedis
from tests.fakes.upstream import FakeUpstream

Q = [{"role": "user", "content": "what is two plus two"}]


@pytest.fixture
def redis_store() -> RedisStore:
    return RedisStore("redis://127.0.0.1:6379/0", timeout_ms=200, prefix=f"tiergate-test-{uuid.uuid4().hex[:8]}:")


def test_hit_miss_bypass_and_ledger(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, redis_store: RedisStore
) -> None:
    server, svc = gateway_factory(api_config(fresh_upstream.base_url), store=redis_store)
    c = sdk(server.url)
    first = c.chat.completions.with_raw_response.create(model="mid", messages=Q, temperature=0)
    assert first.headers["x-tiergate-cache"] == "miss"
    cache_settled(svc)  # the store happens after the response, off its path
    second = c.chat.completions.with_raw_response.create(model="mid", messages=Q, temperature=0)
    assert second.headers["x-tiergate-cache"] == "hit"
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert second.parse().id != first.parse().id
    assert fresh_upstream.calls_for("mid") == 1
    sampled = c.chat.completions.with_raw_response.create(model="mid", messages=Q, temperature=0.7)
    assert sampled.headers["x-tiergate-cache"] == "bypass"  # not deterministic: never cached by default
    rows = svc.ledger.rows()
    assert [r["cache"] for r in rows] == ["miss", "hit", "bypass"]
    assert (
        rows[1]["cost_usd"] == 0.0
        and rows[1]["saved_usd"] == pytest.approx(rows[0]["cost_usd"])
        and rows[0]["cost_usd"] > 0
    )
    assert float(second.headers["x-tiergate-cost-usd"]) == 0.0
    (mid,) = httpx.get(f"{server.url}/api/stats").json()["models"]
    assert (mid["model"], mid["requests"], mid["cache_hits"], mid["cache_hit_rate"]) == ("mid", 3, 1, 0.5)
    assert mid["saved_by_cache_usd"] == pytest.approx(rows[0]["cost_usd"])
    bad = httpx.get(f"{server.url}/api/stats", params={"since": "-1h"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "since"


def test_cache_control_and_ttl(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, redis_store: RedisStore
) -> None:
    server, svc = gateway_factory(api_config(fresh_upstream.base_url), store=redis_store)
    c = sdk(server.url)
    c.chat.completions.create(model="mid", messages=Q, temperature=0, extra_headers={"cache-control": "no-store"})
    cache_settled(svc)
    r = c.chat.completions.with_raw_response.create(
        model="mid", messages=Q, temperature=0, extra_headers={"x-tiergate-cache-ttl": "1"}
    )
    assert r.headers["x-tiergate-cache"] == "miss"  # no-store stored nothing
    cache_settled(svc)
    r = c.chat.completions.with_raw_response.create(
        model="mid", messages=Q, temperature=0, extra_headers={"cache-control": "no-cache"}
    )
    assert r.headers["x-tiergate-cache"] == "bypass"  # looked nothing up, refreshed the entry (default TTL)
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(
            model="mid", messages=Q, temperature=0, extra_headers={"x-tiergate-cache-ttl": "soon"}
        )
    assert e.value.param == "x-tiergate-cache-ttl"


def test_ttl_expiry(gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, redis_store: RedisStore) -> None:
    server, svc = gateway_factory(api_config(fresh_upstream.base_url), store=redis_store)
    c = sdk(server.url)
    c.chat.completions.create(model="mid", messages=Q, temperature=0, extra_headers={"x-tiergate-cache-ttl": "1"})
    cache_settled(svc)
    assert (
        c.chat.completions.with_raw_response.create(model="mid", messages=Q, temperature=0).headers["x-tiergate-cache"]
        == "hit"
    )
    time.sleep(1.2)
    assert (
        c.chat.completions.with_raw_response.create(model="mid", messages=Q, temperature=0).headers["x-tiergate-cache"]
        == "miss"
    )


def test_streamed_answer_is_cached_and_replayed_as_a_stream(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, redis_store: RedisStore
) -> None:
    server, svc = gateway_factory(api_config(fresh_upstream.base_url), store=redis_store)
    c = sdk(server.url)

    def stream() -> tuple[str, list[object], str]:
        with c.chat.completions.with_streaming_response.create(
            model="mid", messages=Q, temperature=0, stream=True, stream_options={"include_usage": True}
        ) as r:
            chunks = list(r.parse())
            return (
                r.headers["x-tiergate-cache"],
                chunks,
                "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices),
            )

    status1, chunks1, text1 = stream()
    cache_settled(svc)
    status2, chunks2, text2 = stream()
    assert (status1, status2) == ("miss", "hit")
    assert text2 == text1 == "echo: what is two plus two"
    assert chunks2[-1].usage is not None and chunks2[-1].usage.total_tokens == chunks1[-1].usage.total_tokens  # type: ignore[attr-defined]
    assert chunks2[-2].choices[0].finish_reason == "stop"  # type: ignore[attr-defined]
    plain = c.chat.completions.with_raw_response.create(model="mid", messages=Q, temperature=0)
    assert plain.headers["x-tiergate-cache"] == "hit" and plain.parse().choices[0].message.content == text1
    assert fresh_upstream.calls_for("mid") == 1


def test_a_cached_tool_call_is_replayed_to_a_stream_as_a_tool_call(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    server, svc = gateway_factory(api_config(fresh_upstream.base_url), store=MemoryStore(100))
    c = sdk(server.url)
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    q = [{"role": "user", "content": "find it [tool]"}]
    ask = {"model": "mid", "messages": q, "temperature": 0, "tools": tools}
    first = c.chat.completions.create(**ask).choices[0]  # type: ignore[call-overload]
    assert first.finish_reason == "tool_calls" and first.message.tool_calls[0].function.name == "lookup"
    cache_settled(svc)
    with c.chat.completions.with_streaming_response.create(**ask, stream=True) as r:  # type: ignore[call-overload]
        assert r.headers["x-tiergate-cache"] == "hit"  # the stored non-streamed answer
        chunks = list(r.parse())
    calls = [t for ch in chunks if ch.choices for t in ch.choices[0].delta.tool_calls or []]
    assert [(t.index, t.id, t.function.name, t.function.arguments) for t in calls] == [
        (0, first.message.tool_calls[0].id, "lookup", first.message.tool_calls[0].function.arguments)
    ]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert fresh_upstream.calls_for("mid") == 1


def test_logprobs_survive_the_cache_both_ways(gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream) -> None:
    server, svc = gateway_factory(api_config(fresh_upstream.base_url), store=MemoryStore(100))
    c = sdk(server.url)

    def tokens(lp: object) -> list[str]:
        return [t.token for t in lp.content] if lp is not None else []  # type: ignore[attr-defined]

    def streamed(q: list[dict[str, str]]) -> tuple[str, list[str]]:
        with c.chat.completions.with_streaming_response.create(
            model="mid", messages=q, temperature=0, logprobs=True, stream=True
        ) as r:
            chunks = [ch for ch in r.parse() if ch.choices]
            return r.headers["x-tiergate-cache"], [t for ch in chunks for t in tokens(ch.choices[0].logprobs)]

    # Stored from a plain answer, replayed to a stream.
    q1 = [{"role": "user", "content": "one two"}]
    plain = c.chat.completions.create(model="mid", messages=q1, temperature=0, logprobs=True)  # type: ignore[arg-type]
    cache_settled(svc)
    assert streamed(q1) == ("hit", tokens(plain.choices[0].logprobs)) and tokens(plain.choices[0].logprobs)
    # Stored from a stream, served plain.
    q2 = [{"role": "user", "content": "three four"}]
    status, first = streamed(q2)
    cache_settled(svc)
    again = c.chat.completions.with_raw_response.create(model="mid", messages=q2, temperature=0, logprobs=True)  # type: ignore[arg-type]
    assert (status, again.headers["x-tiergate-cache"]) == ("miss", "hit")
    assert tokens(again.parse().choices[0].logprobs) == first == ["echo:", "three", "four"]


def test_scope_never_crosses_model_system_prompt_or_temperature(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, redis_store: RedisStore
) -> None:
    server, svc = gateway_factory(api_config(fresh_upstream.base_url), store=redis_store)
    c = sdk(server.url)
    c.chat.completions.create(model="mid", messages=Q, temperature=0)
    cache_settled(svc)
    variants = [
        dict(model="gpt-4o", messages=Q, temperature=0),
        dict(model="mid", messages=[{"role": "system", "content": "be terse"}, *Q], temperature=0),
        dict(model="mid", messages=Q, temperature=0, seed=7),
        dict(model="mid", messages=Q, temperature=0, max_tokens=5),
    ]
    # With a seed both are cacheable; only the temperature differs.
    c.chat.completions.create(model="mid", messages=Q, temperature=0.2, seed=11)
    cache_settled(svc)
    variants.append(dict(model="mid", messages=Q, temperature=0.9, seed=11))
    for v in variants:
        assert c.chat.completions.with_raw_response.create(**v).headers["x-tiergate-cache"] == "miss", v  # type: ignore[call-overload]
    same = c.chat.completions.with_raw_response.create(model="mid", messages=Q, temperature=0.2, seed=11)
    assert same.headers["x-tiergate-cache"] == "hit"  # the control: the seeded request itself does hit


def test_embedded_lru_when_no_redis(gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream) -> None:
    server, svc = gateway_factory(api_config(fresh_upstream.base_url), store=MemoryStore(100))
    c = sdk(server.url)
    c.chat.completions.create(model="mid", messages=Q, temperature=0)
    cache_settled(svc)
    assert (
        c.chat.completions.with_raw_response.create(model="mid", messages=Q, temperature=0).headers["x-tiergate-cache"]
        == "hit"
    )


def test_a_repeated_body_is_parsed_once_and_each_request_stays_its_own(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    """Requests with the same bytes share one parsed body (gateway/body_memo.py); their headers, answers and records
    are still each their own, and a refused body is not kept."""
    server, svc = gateway_factory(api_config(fresh_upstream.base_url), store=MemoryStore(100))
    url = f"{server.url}/v1/chat/completions"
    raw = orjson.dumps({"model": "mid", "messages": Q, "vendor_option": {"nested": [1]}})  # not cached: no temperature
    first = httpx.post(url, content=raw, headers={"content-type": "application/json"})
    second = httpx.post(url, content=raw, headers={"content-type": "application/json", "x-tiergate-tags": "team:a"})
    assert first.status_code == second.status_code == 200
    assert len(svc.bodies) == 1
    assert [r["vendor_option"] for r in fresh_upstream.received] == [{"nested": [1]}] * 2
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    bad = orjson.dumps({"model": "mid", "messages": Q, "temperature": 5})
    for _ in range(2):
        assert httpx.post(url, content=bad, headers={"content-type": "application/json"}).status_code == 400
    assert len(svc.bodies) == 1
    rows = svc.ledger.rows()
    assert [(r["status"], r["tags"]) for r in rows] == [(200, None), (200, ",team:a,"), (400, None), (400, None)]


def test_redis_stopped_and_restarted_mid_test(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, own_redis: OwnRedis
) -> None:
    own_redis.start()
    store = RedisStore(own_redis.url, timeout_ms=100, backoff_s=0.5)
    server, svc = gateway_factory(api_config(fresh_upstream.base_url), store=store)
    c = sdk(server.url)
    answers = []
    c.chat.completions.create(model="mid", messages=Q, temperature=0)
    cache_settled(svc)
    assert (
        c.chat.completions.with_raw_response.create(model="mid", messages=Q, temperature=0).headers["x-tiergate-cache"]
        == "hit"
    )
    own_redis.stop()
    for i in range(10):  # Redis is gone: every request still answered, uncached
        answers.append(
            c.chat.completions.create(model="mid", messages=[{"role": "user", "content": f"q{i}"}], temperature=0)
        )
    assert all(a.choices[0].message.content for a in answers)
    ready = httpx.get(f"{server.url}/readyz").json()
    assert ready["status"] == "degraded" and "degraded" in ready["checks"]["cache"]
    own_redis.start()
    time.sleep(0.6)  # past the back-off: the next request tries Redis again
    c.chat.completions.create(model="mid", messages=Q, temperature=0)
    cache_settled(svc)
    assert (
        c.chat.completions.with_raw_response.create(model="mid", messages=Q, temperature=0).headers["x-tiergate-cache"]
        == "hit"
    )
    assert httpx.get(f"{server.url}/readyz").json()["status"] == "ready"


def test_readiness_finds_redis_back_without_traffic(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, own_redis: OwnRedis
) -> None:
    """A worker whose last cache call failed (Redis down, or one call past its timeout under load) reported
    `degraded` until its next request found Redis again: an idle worker stayed degraded with Redis long back (a
    soak's readiness wait timed out on it). /readyz asks Redis itself."""
    own_redis.start()
    store = RedisStore(own_redis.url, timeout_ms=100, backoff_s=0.5)
    server, _ = gateway_factory(api_config(fresh_upstream.base_url), store=store)
    own_redis.stop()
    sdk(server.url).chat.completions.create(model="mid", messages=Q, temperature=0)  # its cache call fails
    assert httpx.get(f"{server.url}/readyz").json()["status"] == "degraded"
    own_redis.start()
    ready = httpx.get(f"{server.url}/readyz").json()  # no request in between
    assert (ready["status"], ready["checks"]["cache"]) == ("ready", "redis: ok")
    own_redis.stop()  # and the other way: gone while idle, it says so
    assert httpx.get(f"{server.url}/readyz").json()["status"] == "degraded"


def test_a_routed_hit_is_served_before_classification(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, redis_store: RedisStore
) -> None:
    scored: list[str] = []

    async def counting_score(text: str, turns: int) -> float:
        scored.append(text)
        return 0.5  # tier 1

    server, svc = gateway_factory(api_config(fresh_upstream.base_url), score=counting_score, store=redis_store)
    c = sdk(server.url)
    first = c.chat.completions.with_raw_response.create(model="auto", messages=Q, temperature=0)
    cache_settled(svc)
    again = c.chat.completions.with_raw_response.create(model="auto", messages=Q, temperature=0)
    streamed = c.chat.completions.with_raw_response.create(model="auto", messages=Q, temperature=0, stream=True)
    assert [r.headers["x-tiergate-cache"] for r in (first, again, streamed)] == ["miss", "hit", "hit"]
    assert len(scored) == 1  # the hits cost no classification
    assert again.headers["x-tiergate-model"] == first.headers["x-tiergate-model"] == "flaky"
    assert again.headers["x-tiergate-tier"] == "1" and "x-tiergate-score" not in again.headers
    assert "server-timing" not in again.headers  # neither classified nor sent upstream
    assert (
        "".join(ch.choices[0].delta.content or "" for ch in streamed.parse() if ch.choices)
        == "echo: " + Q[0]["content"]
    )
    rows = svc.ledger.rows()
    assert [(r["routed_model"], r["cache"], r["score"]) for r in rows] == [
        ("flaky", "miss", 0.5),
        ("flaky", "hit", None),
        ("flaky", "hit", None),
    ]
    # The same words sent to a model by name are a different target: no hit from the routed entry.
    named = c.chat.completions.with_raw_response.create(model="flaky", messages=Q, temperature=0)
    assert named.headers["x-tiergate-cache"] == "miss"
