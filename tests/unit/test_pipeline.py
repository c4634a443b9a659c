"""The pipeline with fakes at its seams (provider, ledger, score): stream edge cases and the one-record rule."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.errors import InvalidRequest, NotFound, Unavailable, UpstreamFailed
from gateway.ledger import LedgerRecord
from gateway.pipeline import ChatPipeline
from gateway.protocol import ChatCompletionRequest
from gateway.provider import UpstreamError
from gateway.trace import Trace
from router.policy import ModelSpec, TiergateConfig
from router.pricing import PriceTable
from tests.policies import config, config_dict


class FakeProvider:
    def __init__(self, fail: dict[str, UpstreamError] | None = None, break_after: int | None = None) -> None:
        self.fail = fail or {}
        self.break_after = break_after
        self.calls: list[str] = []

    async def complete(self, spec: ModelSpec, messages: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(spec.name)
        if spec.name in self.fail:
            raise self.fail[spec.name]
        return {"choices": [{"message": {"content": "ok"}}], "usage": {"prompt_tokens": 10, "completion_tokens": 2}}

    async def stream(
        self, spec: ModelSpec, messages: list[dict[str, Any]], params: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        self.calls.append(spec.name)
        if spec.name in self.fail:
            raise self.fail[spec.name]
        for i in range(3):
            if self.break_after is not None and i == self.break_after:
                raise UpstreamError(spec.name, 500, "connection reset", True)
            yield {"choices": [{"index": 0, "delta": {"content": f"w{i}"}}]}
        yield {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}  # as every real server ends
        yield {"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 3}}


class ListLedger:
    def __init__(self) -> None:
        self.records: list[LedgerRecord] = []

    def record(self, rec: LedgerRecord) -> None:
        self.records.append(rec)


async def score(text: str, turns: int) -> float:
    return 0.5


def _pipeline(provider: FakeProvider) -> tuple[ChatPipeline, ListLedger]:
    cfg = config()
    ledger = ListLedger()
    return ChatPipeline(cfg, PriceTable(cfg, {}), score, provider, ledger, ()), ledger


def _req(**kw: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": "auto", "messages": [{"role": "user", "content": "q"}], **kw})


async def test_mid_stream_failure_ends_with_error_event_and_one_record() -> None:
    pipe, ledger = _pipeline(FakeProvider(break_after=2))
    result = await pipe.stream(_req(stream=True), "r1")
    assert result.chunks is not None
    got = [c async for c in result.chunks]
    assert [c.get("choices", [{}])[0].get("delta", {}).get("content") for c in got[:2]] == ["w0", "w1"]
    assert got[-1]["error"]["type"] == "server_error"
    (rec,) = ledger.records
    assert rec.status == 502 and rec.routed_model == "mid" and rec.stream


async def test_client_going_away_is_recorded_as_499() -> None:
    pipe, ledger = _pipeline(FakeProvider())
    result = await pipe.stream(_req(stream=True), "r2")
    assert result.chunks is not None
    agen = result.chunks
    await anext(agen)
    await agen.aclose()  # what Starlette does when the client disconnects
    (rec,) = ledger.records
    assert rec.status == 499 and rec.error_type == "client_closed"


async def test_stream_usage_is_recorded_but_withheld_unless_asked() -> None:
    pipe, ledger = _pipeline(FakeProvider())
    r = await pipe.stream(_req(stream=True), "r3")
    assert r.chunks is not None
    got = [c async for c in r.chunks]
    assert all("usage" not in c for c in got)
    assert (ledger.records[0].prompt_tokens, ledger.records[0].completion_tokens) == (4, 3)
    r = await pipe.stream(_req(stream=True, stream_options={"include_usage": True}), "r4")
    assert r.chunks is not None
    assert [c async for c in r.chunks][-1]["usage"]["completion_tokens"] == 3


async def test_every_outcome_leaves_exactly_one_record() -> None:
    fail = {m: UpstreamError(m, 503, "down", True) for m in ("mid", "mid-b", "big", "local")}
    pipe, ledger = _pipeline(FakeProvider(fail))
    with pytest.raises(UpstreamFailed):
        await pipe.complete(_req(), "a")
    with pytest.raises(UpstreamFailed):
        await pipe.stream(_req(stream=True), "b")
    with pytest.raises(NotFound):
        await pipe.complete(_req(model="nope"), "c")
    assert [r.request_id for r in ledger.records] == ["a", "b", "c"]
    assert [r.status for r in ledger.records] == [502, 502, 404]
    assert ledger.records[0].fallbacks == ["mid", "mid-b", "big", "local"]  # best effort: the weaker one last


async def test_when_every_adequate_model_fails_best_effort_answers_with_a_weaker_one_marked_degraded() -> None:
    # Score 0.5 needs tier 1 (mid, mid-b, big): all three fail, and the local model answers.
    fail = {m: UpstreamError(m, 503, "down", True) for m in ("mid", "mid-b", "big")}
    pipe, ledger = _pipeline(FakeProvider(fail))
    whole = await pipe.complete(_req(), "a")
    assert whole.headers["x-tiergate-model"] == "local" and whole.headers["x-tiergate-degraded"] == "true"
    assert whole.headers["x-tiergate-fallbacks"] == "mid,mid-b,big"
    streamed = await pipe.stream(_req(stream=True), "b")
    assert streamed.chunks is not None and [c async for c in streamed.chunks]
    assert streamed.headers["x-tiergate-model"] == "local" and streamed.headers["x-tiergate-degraded"] == "true"
    for rec in ledger.records:
        assert (rec.status, rec.routed_model, rec.degraded, rec.tier) == (200, "local", True, 0)
        assert rec.fallbacks == ["mid", "mid-b", "big"]
    # One of the adequate ones answering is not degraded; under reject the weaker one is never asked.
    pipe, ledger = _pipeline(FakeProvider({"mid": fail["mid"]}))
    assert "x-tiergate-degraded" not in (await pipe.complete(_req(), "c")).headers
    cfg = config(on_unavailable="reject")
    provider = FakeProvider(fail)
    strict = ChatPipeline(cfg, PriceTable(cfg, {}), score, provider, ListLedger(), ())
    with pytest.raises(UpstreamFailed):
        await strict.complete(_req(), "d")
    assert provider.calls == ["mid", "mid-b", "big"]


async def test_a_prompt_too_long_for_the_adequate_models_is_not_sent_to_weaker_ones_with_no_larger_window() -> None:
    too_long = {m: UpstreamError(m, 400, "too long", True, context_exceeded=True) for m in ("mid", "mid-b", "big")}
    provider = FakeProvider(too_long)
    pipe, ledger = _pipeline(provider)
    with pytest.raises(InvalidRequest) as e:
        await pipe.complete(_req(), "a")
    assert e.value.code == "context_length_exceeded"
    assert provider.calls == ["mid", "mid-b", "big"]  # not `local` (2,048 tokens against big's 128,000)
    assert ledger.records[0].status == 400


async def test_timeouts_everywhere_are_504() -> None:
    fail = {m: UpstreamError(m, 504, "timed out", True) for m in ("mid", "mid-b", "big", "local")}
    pipe, _ = _pipeline(FakeProvider(fail))
    with pytest.raises(UpstreamFailed) as e:
        await pipe.complete(_req(), "t")
    assert e.value.status == 504


class BrokenProvider(FakeProvider):
    """A bug below the pipeline: not an upstream failure, just an exception."""

    async def complete(self, spec: ModelSpec, messages: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("bug")

    async def stream(
        self, spec: ModelSpec, messages: list[dict[str, Any]], params: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        raise RuntimeError("bug")
        yield {}  # pragma: no cover - makes this an async generator


async def test_a_bug_is_recorded_as_a_500_on_both_paths() -> None:
    pipe, ledger = _pipeline(BrokenProvider())
    with pytest.raises(RuntimeError):
        await pipe.complete(_req(), "a")
    with pytest.raises(RuntimeError):
        await pipe.stream(_req(stream=True), "b")
    assert [(r.request_id, r.status, r.error_type) for r in ledger.records] == [
        ("a", 500, "server_error"),
        ("b", 500, "server_error"),
    ]


async def test_a_model_that_keeps_failing_is_skipped_until_its_cooldown_ends() -> None:
    provider = FakeProvider({"mid": UpstreamError("mid", 503, "down", True)})
    pipe, ledger = _pipeline(provider)
    for i in range(3):  # the default: 3 failures within 60 s
        await pipe.complete(_req(), f"f{i}")
    assert provider.calls == ["mid", "mid-b"] * 3
    provider.calls.clear()
    await pipe.complete(_req(), "skip")
    r = await pipe.stream(_req(stream=True), "skip-stream")
    assert r.chunks is not None
    _ = [c async for c in r.chunks]
    assert provider.calls == ["mid-b", "mid-b"]  # no time lost on the failing model
    assert ledger.records[-1].fallbacks == [] and ledger.records[-1].routed_model == "mid-b"
    # a request naming the model still goes to it, and its answer ends the cooldown
    del provider.fail["mid"]
    await pipe.complete(_req(model="mid"), "direct")
    provider.calls.clear()
    await pipe.complete(_req(), "back")
    assert provider.calls == ["mid"]


async def test_a_failing_server_of_a_model_gives_way_to_its_other_server_first() -> None:
    d = config_dict()
    d["models"][1] = {**d["models"][1], "api_base": "http://mid-1/v1", "deployments": [{"api_base": "http://mid-2/v1"}]}
    cfg = TiergateConfig.model_validate(d)

    class PerServer(FakeProvider):
        async def complete(
            self, spec: ModelSpec, messages: list[dict[str, Any]], params: dict[str, Any]
        ) -> dict[str, Any]:
            self.calls.append(str(spec.api_base))
            if spec.api_base == "http://mid-1/v1":
                raise UpstreamError(spec.name, 503, "down", True)
            return {"choices": [{"message": {"content": "ok"}}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}

    provider, ledger = PerServer(), ListLedger()
    pipe = ChatPipeline(cfg, PriceTable(cfg, {}), score, provider, ledger, ())
    for i in range(7):
        await pipe.complete(_req(), f"r{i}")
    # The servers take turns; mid-1's turns fail over to mid-2 (not to mid-b, the next model), and after its third
    # failure mid-1 is passed over.
    assert [c[-4] for c in provider.calls] == list("1221221222")
    assert [r.fallbacks for r in ledger.records] == [["mid"], [], ["mid"], [], ["mid"], [], []]
    assert {r.routed_model for r in ledger.records} == {"mid"}


class Gated(FakeProvider):
    """Calls that hang until the test opens the gate, so several are in flight at once."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def complete(self, spec: ModelSpec, messages: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(spec.name)
        await self.gate.wait()
        return {"choices": [{"message": {"content": "ok"}}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}


def _capped(provider: FakeProvider, **local: Any) -> tuple[ChatPipeline, ListLedger]:
    d = config_dict()
    d["models"][0] = {**d["models"][0], "max_concurrency": 1, **local}
    cfg = TiergateConfig.model_validate(d)
    ledger = ListLedger()

    async def easy(text: str, turns: int) -> float:
        return 0.0  # the local model is adequate

    return ChatPipeline(cfg, PriceTable(cfg, {}), easy, provider, ledger, ()), ledger


async def test_a_full_model_that_overflows_sends_the_next_call_to_the_next_adequate_model() -> None:
    provider = Gated()
    pipe, ledger = _capped(provider, when_full="overflow")
    first = asyncio.create_task(pipe.complete(_req(), "a"))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(pipe.complete(_req(), "b"))
    await asyncio.sleep(0.01)
    assert provider.calls == ["local", "mid"]  # not queued behind the local call
    provider.gate.set()
    await asyncio.gather(first, second)
    assert [r.routed_model for r in ledger.records] == ["local", "mid"]
    decision, _ = await pipe.route(
        _req(), Trace("x", "auto", False, "chat.completions"), pipe.config.policies["default"], []
    )
    assert decision.chain[0].name == "local"  # its slot came back with the answer


async def test_a_full_model_that_waits_queues_the_next_call_and_a_long_wait_is_a_503() -> None:
    provider = Gated()
    pipe, ledger = _capped(provider)  # when_full: wait, the default
    first = asyncio.create_task(pipe.complete(_req(), "a"))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(pipe.complete(_req(), "b"))
    await asyncio.sleep(0.01)
    assert provider.calls == ["local"]  # the second waits for the local model's slot
    provider.gate.set()
    await asyncio.gather(first, second)
    assert provider.calls == ["local", "local"] and [r.status for r in ledger.records] == [200, 200]

    provider, ledger = Gated(), ListLedger()
    pipe, ledger = _capped(provider, timeout_s=0.05)
    hold = asyncio.create_task(pipe.complete(_req(model="local"), "held"))
    await asyncio.sleep(0.01)
    with pytest.raises(Unavailable) as e:
        await pipe.complete(_req(model="local"), "too-long")  # named: the model alone, so nothing else to try
    assert e.value.code == "model_busy" and "max_concurrency" in str(e.value)
    provider.gate.set()
    await hold
    assert [(r.request_id, r.status) for r in ledger.records] == [("too-long", 503), ("held", 200)]


async def test_a_stream_holds_its_slot_until_it_ends_even_if_never_read() -> None:
    pipe, ledger = _capped(FakeProvider())
    inflight = pipe.deployments.inflight
    r = await pipe.stream(_req(stream=True), "s1")
    assert r.chunks is not None and inflight.count("local") == 1
    _ = [c async for c in r.chunks]
    assert inflight.count("local") == 0 and ledger.records[-1].status == 200
    r = await pipe.stream(_req(stream=True), "s2")
    assert inflight.count("local") == 1
    del r  # the client left before the response began: nobody iterates the stream
    gc.collect()
    for _ in range(5):
        await asyncio.sleep(0)  # the event loop closes the dropped, started relay
    assert inflight.count("local") == 0
    assert [(x.request_id, x.status) for x in ledger.records] == [("s1", 200), ("s2", 499)]


class Flaky(FakeProvider):
    """`mid`'s first `times` calls fail with `err`; then it answers. Every other model answers."""

    def __init__(self, err: UpstreamError, times: int) -> None:
        super().__init__()
        self.err, self.times, self.failed = err, times, 0

    def _maybe_fail(self, spec: ModelSpec) -> None:
        if spec.name == "mid" and self.failed < self.times:
            self.failed += 1
            e = self.err
            raise UpstreamError(spec.name, e.status, e.message, e.retryable, e.context_exceeded, e.retry_after_s)

    async def complete(self, spec: ModelSpec, messages: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(spec.name)
        self._maybe_fail(spec)
        return {"choices": [{"message": {"content": "ok"}}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}

    async def stream(
        self, spec: ModelSpec, messages: list[dict[str, Any]], params: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        self._maybe_fail(spec)
        async for chunk in super().stream(spec, messages, params):  # which counts the call
            yield chunk


def _retrying(provider: FakeProvider, **retry: Any) -> tuple[ChatPipeline, ListLedger]:
    d = config_dict()
    d["retry"] = {"backoff_s": 0.001, **retry}
    d["cooldown"] = {"failures": 0}
    cfg = TiergateConfig.model_validate(d)
    ledger = ListLedger()
    return ChatPipeline(cfg, PriceTable(cfg, {}), score, provider, ledger, ()), ledger


async def test_a_passing_failure_is_retried_on_the_same_model_before_the_next() -> None:
    provider = Flaky(UpstreamError("x", 503, "overloaded", True), times=2)
    pipe, ledger = _retrying(provider, attempts=2)
    await pipe.complete(_req(), "a")
    assert provider.calls == ["mid", "mid", "mid"]
    assert (ledger.records[0].routed_model, ledger.records[0].fallbacks) == ("mid", ["mid", "mid"])
    provider = Flaky(UpstreamError("x", 503, "overloaded", True), times=2)
    r = await _retrying(provider, attempts=2)[0].stream(_req(stream=True), "s")
    assert r.chunks is not None and [c async for c in r.chunks]
    assert provider.calls == ["mid"]  # failed twice before a first chunk (uncounted by the fake), then streamed
    assert provider.failed == 2

    provider = Flaky(UpstreamError("x", 503, "overloaded", True), times=2)
    pipe, ledger = _retrying(provider, attempts=1)  # one retry is not enough: the next model answers
    await pipe.complete(_req(), "b")
    assert provider.calls == ["mid", "mid", "mid-b"] and ledger.records[0].routed_model == "mid-b"


@pytest.mark.parametrize(
    "err",
    [
        UpstreamError("x", 401, "bad key", True),  # the model's fault, but no status to retry
        UpstreamError("x", 400, "too long", True, context_exceeded=True),  # a bigger model may take it; not this one
        UpstreamError("x", 429, "slow down", True, retry_after_s=60.0),  # longer than max_wait_s
    ],
)
async def test_what_is_not_retried_moves_on_at_once(err: UpstreamError) -> None:
    provider = Flaky(err, times=1)
    pipe, _ = _retrying(provider, attempts=3)
    await pipe.complete(_req(), "c")
    assert provider.calls == ["mid", "mid-b"]


async def test_private_data_with_no_local_model_allowed_is_refused_not_sent_out() -> None:
    cfg = config(allowed_models=["mid", "big"], private_data={"detect": ["email"]})
    provider, ledger = FakeProvider(), ListLedger()
    pipe = ChatPipeline(cfg, PriceTable(cfg, {}), score, provider, ledger, ())
    with pytest.raises(InvalidRequest) as e:
        await pipe.complete(_req(messages=[{"role": "user", "content": "mail bob@corp.example"}]), "p")
    assert e.value.code == "private_data" and "allows none" in str(e.value)
    assert provider.calls == [] and ledger.records[0].private_data == ",email,"
    await pipe.complete(_req(), "fine")  # no private data: routed as usual
    assert provider.calls == ["mid"]


class _Watch:
    """The disconnect watch as the pipeline sees it (gateway/disconnect.py)."""

    def __init__(self, gone: bool) -> None:
        self.gone = gone

    def arm(self) -> None:
        pass


@pytest.mark.parametrize(
    ("gone", "status", "error_type"), [(True, 499, "client_closed"), (False, 503, "server_stopping")]
)
async def test_a_request_cancelled_before_its_answer_is_recorded_as_the_clients_or_the_servers_on_both_paths(
    gone: bool, status: int, error_type: str
) -> None:
    """Cancelled once its client left, a request is a 499; cancelled with its client still there (the server
    stopping: uvicorn past TIERGATE_SHUTDOWN_GRACE_S), a 503."""
    provider = Gated()
    pipe, ledger = _capped(provider)
    whole = asyncio.create_task(pipe.complete(_req(), "whole", watch=_Watch(gone)))
    await asyncio.sleep(0.01)
    waiting = asyncio.create_task(pipe.stream(_req(stream=True), "waiting", watch=_Watch(gone)))  # queued for a slot
    await asyncio.sleep(0.01)
    for task in (waiting, whole):
        task.cancel()
    await asyncio.gather(whole, waiting, return_exceptions=True)
    assert sorted((r.request_id, r.status, r.error_type) for r in ledger.records) == [
        ("waiting", status, error_type),
        ("whole", status, error_type),
    ]
    assert pipe.deployments.inflight.count("local") == 0 and pipe.deployments.inflight.load()["local"].waiting == 0
