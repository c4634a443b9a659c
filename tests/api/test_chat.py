"""The official openai SDK against a running gateway; real litellm calls a fake hosted upstream over HTTP."""

from __future__ import annotations

import json
from typing import Any

import httpx
import litellm
import openai
import pytest

from gateway.cache import MemoryStore
from tests.conftest import GatewayFactory, api_config, sdk
from tests.fakes.upstream import FakeUpstream


def test_easy_prompt_goes_local_hard_prompt_goes_hosted(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    server, _ = gateway_factory(api_config(fresh_upstream.base_url))
    client = sdk(server.url)
    easy = client.chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user", "content": "hi"}])
    assert easy.headers["x-tiergate-model"] == "local-small"
    assert easy.headers["x-tiergate-tier"] == "0"
    assert easy.parse().choices[0].message.content == "echo: hi"
    hard = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "prove it [score=0.9]"}]
    )
    assert hard.headers["x-tiergate-model"] == "gpt-4o"
    assert hard.headers["x-tiergate-score"] == "0.9000"
    assert hard.parse().model == "gpt-4o"
    assert fresh_upstream.received[-1]["model"] == "gpt-4o"
    assert hard.headers["x-request-id"].startswith("tg-")


def _timing(header: str) -> dict[str, float]:
    return {n: float(d.removeprefix("dur=")) for n, d in (part.strip().split(";") for part in header.split(","))}


def test_server_timing_says_where_the_time_went(gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream) -> None:
    fresh_upstream.script("local-small", delay_s=0.05)
    server, _ = gateway_factory(api_config(fresh_upstream.base_url))
    client = sdk(server.url)
    routed = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "hi"}]
    )
    t = _timing(routed.headers["server-timing"])
    # Not >= 50: the fake upstream's loop may be uvloop, whose libuv timers run on a loop clock cached at millisecond
    # granularity, so a 50 ms sleep can end up to ~1 ms early by the gateway's clock (CI saw 49.752).
    assert set(t) == {"classify", "upstream"} and t["upstream"] >= 40.0 and 0.0 <= t["classify"] < t["upstream"]
    named = client.chat.completions.with_raw_response.create(
        model="local-small", messages=[{"role": "user", "content": "hi"}], temperature=0
    )
    assert set(_timing(named.headers["server-timing"])) == {"upstream"}  # a hit has none (tests/api/test_cache.py)


def test_requests_in_progress_are_counted_until_they_end(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    """The classifier scores on the loop only when its request is the one in progress: the count must be exact."""
    seen: list[int] = []

    async def score(text: str, turns: int) -> float:
        seen.append(svc.activity.active)
        return 0.1

    server, svc = gateway_factory(api_config(fresh_upstream.base_url), score=score)
    client = sdk(server.url)
    client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}])
    list(client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}], stream=True))
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="auto", messages=[])
    assert httpx.get(f"{server.url}/healthz").status_code == 200
    assert httpx.get(f"{server.url}/nowhere").status_code == 404
    assert seen == [1, 1]
    assert svc.activity.active == 0


def test_ledger_costs_equal_tokens_times_prices(gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream) -> None:
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    client = sdk(server.url)
    r1 = client.chat.completions.with_raw_response.create(
        model="mid", messages=[{"role": "user", "content": "one two three four five six"}]
    )
    r2 = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "tell me everything [score=0.95]"}]
    )
    rows = {r["request_id"]: r for r in svc.ledger.rows()}
    mid, big = rows[r1.headers["x-request-id"]], rows[r2.headers["x-request-id"]]
    # The fake upstream counts words: prompt 6, answer "echo: one ... six" 7.
    assert (mid["prompt_tokens"], mid["completion_tokens"]) == (6, 7)
    assert mid["cost_usd"] == pytest.approx((6 * 0.5 + 7 * 1.5) / 1e6)
    gpt4o = litellm.model_cost["gpt-4o"]
    expect_big = (
        big["prompt_tokens"] * gpt4o["input_cost_per_token"] + big["completion_tokens"] * gpt4o["output_cost_per_token"]
    )
    assert big["cost_usd"] == pytest.approx(expect_big) and big["cost_usd"] > 0
    assert big["baseline_cost_usd"] == pytest.approx(big["cost_usd"])  # gpt-4o is the baseline
    assert mid["baseline_cost_usd"] == pytest.approx(
        6 * gpt4o["input_cost_per_token"] + 7 * gpt4o["output_cost_per_token"]
    )
    assert float(r1.headers["x-tiergate-cost-usd"]) == pytest.approx(mid["cost_usd"], abs=1e-8)
    assert mid["routed_model"] == "mid" and mid["requested_model"] == "mid" and mid["score"] is None
    assert big["tier"] == 2 and big["score"] == pytest.approx(0.95) and big["policy"] == "default"
    assert big["status"] == 200 and big["latency_ms"] > 0


def test_fallback_when_first_candidate_returns_500(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    fresh_upstream.script("flaky", status=500)
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    r = sdk(server.url).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "medium [score=0.5]"}]
    )
    assert r.headers["x-tiergate-model"] == "mid"
    assert r.headers["x-tiergate-fallbacks"] == "flaky"
    assert fresh_upstream.calls_for("flaky") == 1  # no hidden retries: the pipeline owns fallback
    (row,) = svc.ledger.rows()
    assert row["fallbacks"] == ["flaky"] and row["routed_model"] == "mid"


def test_all_candidates_failing_is_502_and_recorded(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    for m in ("flaky", "mid", "gpt-4o", "local-small"):  # the last one is best effort's, below the tier asked
        fresh_upstream.script(m, status=503)
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    with pytest.raises(openai.APIStatusError) as e:
        sdk(server.url).chat.completions.create(model="auto", messages=[{"role": "user", "content": "x [score=0.5]"}])
    assert e.value.status_code == 502
    body = e.value.body
    assert isinstance(body, dict) and body["type"] == "server_error"
    assert "sk-fake" not in str(body) and "Traceback" not in str(body)
    (row,) = svc.ledger.rows()
    assert row["status"] == 502 and row["fallbacks"] == ["flaky", "mid", "gpt-4o", "local-small"]


def test_rate_limited_candidate_falls_back(gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream) -> None:
    fresh_upstream.script("flaky", status=429, fail_times=1)
    server, _ = gateway_factory(api_config(fresh_upstream.base_url))
    r = sdk(server.url).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "x [score=0.5]"}]
    )
    assert r.headers["x-tiergate-model"] == "mid"


def test_streaming_with_usage_and_ledger(gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream) -> None:
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    client = sdk(server.url)
    stream = client.chat.completions.create(
        model="mid",
        messages=[{"role": "user", "content": "a b c"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: a b c"
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 3
    assert all(c.model == "mid" for c in chunks)
    # Without include_usage the client gets no usage chunk, but the ledger still has the counts.
    plain = list(
        client.chat.completions.create(model="mid", messages=[{"role": "user", "content": "d e"}], stream=True)
    )
    assert all(c.usage is None for c in plain) and all(c.choices for c in plain)
    rows = svc.ledger.rows()
    assert [r["stream"] for r in rows] == [1, 1]
    assert rows[1]["prompt_tokens"] == 2 and rows[1]["completion_tokens"] == 3
    assert rows[1]["cost_usd"] == pytest.approx((2 * 0.5 + 3 * 1.5) / 1e6)
    assert rows[1]["ttft_ms"] is not None
    assert [r["usage_estimated"] for r in rows] == [0, 0]


def test_several_choices_are_served_costed_and_never_cached(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    client = sdk(server.url)
    q = [{"role": "user", "content": "a b c"}]
    answer = client.chat.completions.create(model="mid", messages=q, n=3, temperature=0)
    assert [c.index for c in answer.choices] == [0, 1, 2]
    assert all(c.message.content == "echo: a b c" for c in answer.choices)
    assert answer.usage is not None and answer.usage.completion_tokens == 12  # 4 words in each of 3 answers
    # The same deterministic request again goes upstream: a cache entry keeps one answer, not n.
    client.chat.completions.create(model="mid", messages=q, n=3, temperature=0)
    assert fresh_upstream.calls_for("mid") == 2 and all(b["n"] == 3 for b in fresh_upstream.received)
    stream = client.chat.completions.create(
        model="mid", messages=q, n=2, stream=True, stream_options={"include_usage": True}
    )
    texts: dict[int, str] = {}
    chunks = list(stream)
    for c in chunks:
        for ch in c.choices:
            texts[ch.index] = texts.get(ch.index, "") + (ch.delta.content or "")
    assert texts == {0: "echo: a b c", 1: "echo: a b c"}
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 8
    rows = svc.ledger.rows()
    assert [(r["completion_tokens"], r["stream"], r["cache"]) for r in rows] == [
        (12, 0, "bypass"),
        (12, 0, "bypass"),
        (8, 1, "bypass"),
    ]
    assert rows[0]["cost_usd"] == pytest.approx((3 * 0.5 + 12 * 1.5) / 1e6)


def test_more_choices_than_openai_allows_is_a_400_naming_n(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    server, _ = gateway_factory(api_config(fresh_upstream.base_url))
    with pytest.raises(openai.BadRequestError) as e:
        sdk(server.url).chat.completions.create(model="mid", messages=[{"role": "user", "content": "x"}], n=129)
    assert e.value.body["param"] == "n"  # type: ignore[index]
    assert fresh_upstream.received == []


def test_an_upstream_that_reports_no_usage_gets_estimated_costs_not_zero(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    fresh_upstream.script("mid", usage=False)
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    client = sdk(server.url)
    q = [{"role": "user", "content": "a b c d"}]  # 7 characters + one message: ~5 prompt tokens by the router's rule
    answer = client.chat.completions.create(model="mid", messages=q)
    assert answer.usage is None and answer.choices[0].message.content == "echo: a b c d"
    streamed = list(client.chat.completions.create(model="mid", messages=q, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == "echo: a b c d"
    rows = svc.ledger.rows()
    assert [r["usage_estimated"] for r in rows] == [1, 1]
    # Not streamed: 14 answer characters, 4 tokens at ~4 a token. Streamed: 5 deltas, about a token each.
    assert [(r["prompt_tokens"], r["completion_tokens"]) for r in rows] == [(5, 4), (5, 5)]
    assert rows[0]["cost_usd"] == pytest.approx((5 * 0.5 + 4 * 1.5) / 1e6)


def test_a_stream_the_upstream_ends_before_its_answer_is_an_error_not_a_short_answer(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    fresh_upstream.script("mid", cut_stream=True)  # the body ends cleanly after one word: no finish, no [DONE]
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    got: list[str] = []
    with pytest.raises(openai.APIError, match="failed mid-stream"):
        for chunk in sdk(server.url).chat.completions.create(
            model="mid", messages=[{"role": "user", "content": "a b c"}], stream=True
        ):
            got.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(got) == "echo:"
    (row,) = svc.ledger.rows()
    assert (row["status"], row["error_type"], row["usage_estimated"]) == (502, "server_error", 1)


def test_streaming_falls_back_before_first_chunk(gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream) -> None:
    fresh_upstream.script("flaky", status=500)
    server, _ = gateway_factory(api_config(fresh_upstream.base_url))
    with sdk(server.url).chat.completions.with_streaming_response.create(
        model="auto", messages=[{"role": "user", "content": "q [score=0.5]"}], stream=True
    ) as r:
        assert r.headers["x-tiergate-model"] == "mid"
        text = "".join(c.choices[0].delta.content or "" for c in r.parse() if c.choices)
    assert text.startswith("echo: q")


def test_unknown_params_pass_through_to_upstream(gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream) -> None:
    server, _ = gateway_factory(api_config(fresh_upstream.base_url))
    sdk(server.url).chat.completions.create(
        model="mid", messages=[{"role": "user", "content": "x"}], temperature=0, extra_body={"top_k": 5, "min_p": 0.1}
    )
    sent = fresh_upstream.received[-1]
    assert sent["top_k"] == 5 and sent["min_p"] == 0.1 and sent["temperature"] == 0


@pytest.mark.parametrize(
    ("stop", "sent"),
    [("", None), ([""], None), ([], None), (["", "\n\n"], ["\n\n"]), ("END", "END"), (["a", "b"], ["a", "b"])],
)
def test_an_empty_stop_sequence_is_not_sent_on(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, stop: Any, sent: Any
) -> None:
    """An empty stop sequence matches before the first token: llama-server answered each such request with an empty
    message at once. It stops nothing, so it is left out (and an empty list with it); the rest go as sent."""
    server, _ = gateway_factory(api_config(fresh_upstream.base_url))
    sdk(server.url).chat.completions.create(model="mid", messages=[{"role": "user", "content": "x"}], stop=stop)
    assert fresh_upstream.received[-1].get("stop") == sent


def test_unavailable_model_listed_and_skipped(gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream) -> None:
    server, _ = gateway_factory(api_config(fresh_upstream.base_url))
    client = sdk(server.url)
    models = {m.id: m for m in client.models.list().data}
    assert {"auto", "default", "strict", "mid", "keyless", "all-minilm-l6-v2"} <= set(models)
    assert models["keyless"].model_extra["available"] is False
    assert "TIERGATE_TEST_UNSET_KEY" in models["keyless"].model_extra["unavailable_reason"]
    assert models["mid"].model_extra["available"] is True
    assert client.models.retrieve("keyless") == models["keyless"]  # the SDK's retrieve: the list's own entry
    assert client.models.retrieve("auto").model_extra["kind"] == "policy"
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("gpt-9")
    assert missing.value.code == "model_not_found" and "auto" in missing.value.message
    # `strict` allows only local-small and keyless, rejects instead of degrading: a hard prompt gets a 503.
    with pytest.raises(openai.InternalServerError) as e:
        client.chat.completions.create(model="strict", messages=[{"role": "user", "content": "x [score=0.9]"}])
    assert e.value.status_code == 503 and e.value.code == "no_model_available"


def test_best_effort_degrades_with_header(gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream) -> None:
    cfg = api_config(fresh_upstream.base_url)
    cfg["models"][3]["api_key_env"] = "TIERGATE_TEST_UNSET_KEY"  # gpt-4o down: nothing at tier 2
    server, svc = gateway_factory(cfg)
    r = sdk(server.url).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "x [score=0.9]"}]
    )
    assert r.headers["x-tiergate-degraded"] == "true"
    assert r.headers["x-tiergate-tier"] == "2" or r.headers["x-tiergate-model"] in ("flaky", "mid")
    assert svc.ledger.rows()[0]["degraded"] == 1


def test_healthz_and_readyz(gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream) -> None:
    server, _ = gateway_factory(api_config(fresh_upstream.base_url))
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{server.url}/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["unavailable_models"] == ["keyless"]


def test_health_checks_answer_head_with_their_status(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Probes and uptime monitors that send HEAD (`curl -I`) got a 405 from FastAPI's GET routes."""
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    for path in ("/healthz", "/readyz"):
        r = httpx.head(f"{server.url}{path}")
        assert (r.status_code, r.content) == (200, b""), path
    monkeypatch.setattr(svc.ledger, "alive", lambda: False)  # the writer thread gone: not ready
    assert httpx.get(f"{server.url}/readyz").status_code == httpx.head(f"{server.url}/readyz").status_code == 503
    assert httpx.head(f"{server.url}/healthz").status_code == 200


@pytest.mark.parametrize("transport", ["auto", "litellm"])
@pytest.mark.parametrize("stream", [False, True])
def test_prompt_tokens_from_the_providers_cache_are_billed_at_its_cached_price(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, transport: str, stream: bool
) -> None:
    """gpt-4o's cached input costs half its input in litellm's table: a bill that ignored it would overstate it."""
    fresh_upstream.script("gpt-4o", cached_tokens=4)
    cfg = api_config(fresh_upstream.base_url)
    cfg["models"][3]["transport"] = transport
    server, svc = gateway_factory(cfg)
    messages = [{"role": "user", "content": "one two three four five six [score=0.95]"}]
    client = sdk(server.url)
    if stream:
        chunks = list(client.chat.completions.create(model="auto", messages=messages, stream=True))
        assert chunks[-1].choices and chunks[-1].choices[0].finish_reason == "stop"
    else:
        client.chat.completions.create(model="auto", messages=messages)
    (row,) = svc.ledger.rows()
    gpt4o = litellm.model_cost["gpt-4o"]
    assert gpt4o["cache_read_input_token_cost"] < gpt4o["input_cost_per_token"]
    assert (row["routed_model"], row["prompt_tokens"], row["cached_tokens"]) == ("gpt-4o", 7, 4)
    expect = (
        3 * gpt4o["input_cost_per_token"]
        + 4 * gpt4o["cache_read_input_token_cost"]
        + row["completion_tokens"] * gpt4o["output_cost_per_token"]
    )
    assert row["cost_usd"] == pytest.approx(expect)
    assert row["baseline_cost_usd"] == pytest.approx(expect)  # the same tokens at the baseline's (its own) prices


@pytest.mark.parametrize("transport", ["auto", "litellm"])
def test_a_streamed_tool_call_arrives_whole_and_is_costed(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, transport: str
) -> None:
    cfg = api_config(fresh_upstream.base_url)
    cfg["models"][2]["transport"] = transport  # mid: the cheapest model with tools
    server, svc = gateway_factory(cfg, store=MemoryStore())
    tools = [{"type": "function", "function": {"name": "search", "parameters": {"type": "object", "properties": {}}}}]
    messages = [{"role": "user", "content": "find cats [tool]"}]
    client = sdk(server.url)
    for attempt in range(2):
        name, args, finish = "", "", None
        stream = client.chat.completions.create(
            model="auto",
            messages=messages,
            tools=tools,
            stream=True,
            temperature=0,  # type: ignore[arg-type]
        )
        for chunk in stream:
            for choice in chunk.choices:
                for call in choice.delta.tool_calls or []:
                    name += (call.function.name or "") if call.function else ""
                    args += (call.function.arguments or "") if call.function else ""
                finish = choice.finish_reason or finish
        assert (name, json.loads(args), finish) == ("search", {"q": "find cats [tool]"}, "tool_calls"), attempt
    rows = svc.ledger.rows()
    assert [(r["routed_model"], r["status"], r["usage_estimated"]) for r in rows] == [("mid", 200, 0)] * 2
    assert rows[0]["cost_usd"] == pytest.approx(
        (rows[0]["prompt_tokens"] * 0.5 + rows[0]["completion_tokens"] * 1.5) / 1e6
    )
    # The streamed call was assembled for the cache (gateway/response_cache.py: assemble): the repeat is replayed.
    assert [r["cache"] for r in rows] == ["miss", "hit"] and fresh_upstream.calls_for("mid") == 1


def test_openais_deprecated_functions_go_to_a_model_with_tool_calling(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    """An app written before `tools` sends `functions`: the easy request went to local-small (no tool calling), whose
    server ignores them and answers in text. Now to `mid`, the cheapest with tools, sent the functions as they came;
    with `function_call: "none"` to local-small, sent none."""
    server, _ = gateway_factory(api_config(fresh_upstream.base_url))
    functions = [{"name": "search", "parameters": {"type": "object", "properties": {}}}]
    msgs = [{"role": "user", "content": "find cats [score=0.1]"}]
    for call, model in (("auto", "mid"), ("none", "local-small")):
        body = {"model": "auto", "messages": msgs, "functions": functions, "function_call": call}
        r = httpx.post(f"{server.url}/v1/chat/completions", json=body)
        assert (r.status_code, r.headers["x-tiergate-model"]) == (200, model)
        sent = fresh_upstream.received[-1]
        assert (sent.get("functions"), sent.get("function_call")) == (
            (functions, call) if model == "mid" else (None, None)
        )


@pytest.mark.parametrize("stream", [False, True])
def test_tools_with_tool_choice_none_go_to_the_cheapest_model_without_them(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, stream: bool
) -> None:
    """`tool_choice: "none"` forbids tool calls, so tool calling is not needed: the easy request goes to local-small
    (no tools), which is sent the tool-call history but not the tools. It went to `mid`, the cheapest with tools."""
    server, _ = gateway_factory(api_config(fresh_upstream.base_url))
    client = sdk(server.url)
    tools = [{"type": "function", "function": {"name": "search", "parameters": {"type": "object", "properties": {}}}}]
    call = {"id": "c1", "type": "function", "function": {"name": "search", "arguments": "{}"}}
    messages = [
        {"role": "user", "content": "find cats"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "3 cats"},
        {"role": "user", "content": "sum up [score=0.1]"},
    ]
    for choice, model in (("none", "local-small"), ("auto", "mid")):
        with client.chat.completions.with_streaming_response.create(
            model="auto",
            messages=messages,
            tools=tools,
            tool_choice=choice,
            stream=stream,  # type: ignore[arg-type]
        ) as r:
            assert r.headers["x-tiergate-model"] == model
            r.read()
        sent = fresh_upstream.received[-1]
        assert sent["model"] == model and sent["messages"][1]["tool_calls"][0]["id"] == "c1"
        assert ("tools" in sent, sent.get("tool_choice")) == (
            (False, None) if model == "local-small" else (True, choice)
        )


@pytest.mark.parametrize(
    ("choice", "status"),
    [("required", 400), ({"type": "function", "function": {"name": "f"}}, 400), ("auto", 200), ("none", 200)],
)
def test_a_required_tool_call_is_refused_by_a_named_model_without_tool_calling(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, choice: object, status: int
) -> None:
    """`local-small` declares no tool calling. Named with tools it still gets them (its server may do better than
    declared), but when a call is required the answer would be text: llama-server with SmolLM2 gives text for
    `tool_choice: "required"`. A 400 before any call, as for an image sent to a model without vision."""
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    body = {"model": "local-small", "messages": [{"role": "user", "content": "call f"}], "tools": tools}
    r = httpx.post(f"{server.url}/v1/chat/completions", json={**body, "tool_choice": choice})
    assert r.status_code == status, r.text
    if status == 400:
        err = r.json()["error"]
        assert (err["param"], err["code"]) == ("tool_choice", "unsupported_capability"), err
        assert "local-small" in err["message"] and fresh_upstream.received == []
        (row,) = svc.ledger.rows()
        assert row["status"] == 400
