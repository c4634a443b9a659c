"""What is known about one chat request as it goes (its Trace): how it starts, what a cancelled one books, and
what it becomes at the end: the answer's x-tiergate-* headers and the request's ledger record, priced."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway import tags
from gateway.auth import digest, ledger_id, presented_key
from gateway.errors import GatewayError
from gateway.ledger import LedgerRecord
from gateway.ledger.record import END_USER_MAX
from gateway.protocol import ChatCompletionRequest
from gateway.usage import estimate_usage
from router.policy import ApiKey, ModelSpec
from router.pricing import PriceTable, Usage
from router.routes import RouteMatch
from router.select import NO_STEERING, Steering


@dataclass
class Trace:
    """What is known about a request so far; becomes its ledger record."""

    request_id: str
    requested_model: str
    stream: bool
    endpoint: str = "chat.completions"  # or "responses": the same pipeline behind OpenAI's Responses API
    started: float = field(default_factory=time.perf_counter)
    ts: float = field(default_factory=time.time)
    policy: str = ""
    baseline_model: str | None = None
    routed: ModelSpec | None = None
    score: float | None = None
    route: RouteMatch | None = None  # the policy's route the prompt matched (router/routes.py), if any
    degraded: bool = False
    fallbacks: list[str] = field(default_factory=list)
    server: str = ""  # the cooldown key of the server that answered (gateway/balancer.py)
    usage: Usage = field(default_factory=lambda: Usage(0, 0))
    usage_estimated: bool = False  # the upstream reported none: `usage` is estimate_usage's
    ttft_ms: float | None = None
    status: int = 200
    error_type: str | None = None
    cache: str = "bypass"
    cache_similarity: float | None = None  # set on a semantic hit
    key_id: str | None = None
    end_user: str | None = None  # the request's `user`
    tags: str | None = None  # the ledger's form of its x-tiergate-tags
    prompt: str | None = None  # kept only when the policy records prompts
    private_data: tuple[str, ...] = ()  # kinds of private data found, when the policy looks (router/private.py)
    steering: Steering = NO_STEERING  # the request's own routing headers (gateway/steering.py)
    cascade: str | None = None  # kept / escalated / draft_failed, for requests the policy cascaded
    draft_model: str | None = None
    draft_confidence: float | None = None
    draft_cost: float = 0.0  # what an escalated draft cost, on top of the answer's own cost
    classify_ms: float | None = None  # time to score the prompt (Server-Timing)
    upstream_ms: float | None = None  # time in upstream calls, fallbacks and drafts included (non-streams)
    # Parameters, content parts or tool calls unknown to the gateway, passed on unchecked (llama.cpp's own, newer
    # OpenAI ones): a server's 500 to such a request may be about them, so it is not held against the server
    # (gateway/cooldown.py: failed; gateway/protocol.py: carries_unchecked).
    unchecked: bool = False

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0

    def fail(self, err: GatewayError) -> GatewayError:
        self.status, self.error_type = err.status, err.type
        return err


def start_trace(
    req: ChatCompletionRequest,
    request_id: str,
    stream: bool,
    headers: Mapping[str, str] | None,
    api_key: ApiKey | None,
    endpoint: str,
) -> Trace:
    """A request's trace as both entry points start it: who asked (key, end user, tags), for what, through which
    API."""
    h = headers or {}
    return Trace(
        request_id,
        req.model,
        stream,
        endpoint,
        key_id=key_id(h, api_key),
        end_user=req.user,
        tags=tags.column(h),
        unchecked=req.carries_unchecked(),
    )


def cancelled(trace: Trace, req: ChatCompletionRequest, by_client: bool) -> None:
    """A request cancelled before its answer: a 499 when its client left (gateway/disconnect.py), a 503 when the
    server is stopping (uvicorn cancels what outlasts TIERGATE_SHUTDOWN_GRACE_S; the client is told to retry, by
    gateway/front.py). If a model had been called, the record books the prompt it was sent, estimated: a hosted API
    bills the prompt of a call it has begun, answered or not."""
    trace.status, trace.error_type = (499, "client_closed") if by_client else (503, "server_stopping")
    if trace.routed is not None and trace.usage.prompt_tokens == 0:
        trace.usage, trace.usage_estimated = estimate_usage(req, 0), True


def key_id(headers: Mapping[str, str], api_key: ApiKey | None = None) -> str | None:
    """A stable, irreversible id for the caller's API key (the bearer token), for per-key reporting. A key the
    gateway checked (gateway/auth.py) gives the same id however it was sent."""
    if api_key is not None:
        return ledger_id(api_key.sha256)
    token = presented_key(headers.get("authorization", ""))
    return ledger_id(digest(token)) if token else None


def spec_name(trace: Trace) -> str:
    assert trace.routed is not None
    return trace.routed.name


def costs(trace: Trace, prices: PriceTable) -> tuple[float, float, float]:
    """(cost, baseline cost, saved by the cache): a hit costs nothing and saves what the model would have cost."""
    cost = (prices.cost(trace.routed.name, trace.usage) if trace.routed else 0.0) + trace.draft_cost
    base = prices.cost(trace.baseline_model, trace.usage) if trace.baseline_model else 0.0
    return (0.0, base, cost) if trace.cache == "hit" else (cost, base, 0.0)


def response_headers(trace: Trace, prices: PriceTable, with_cost: bool) -> dict[str, str]:
    """The x-tiergate-* headers (and Server-Timing) of the answer to this request."""
    assert trace.routed is not None
    h = {
        "x-request-id": trace.request_id,
        "x-tiergate-model": trace.routed.name,
        "x-tiergate-tier": str(trace.routed.tier),
        "x-tiergate-policy": trace.policy,
    }
    if trace.score is not None:
        h["x-tiergate-score"] = f"{trace.score:.4f}"
    if trace.route is not None:
        h["x-tiergate-route"] = trace.route.name
    h["x-tiergate-cache"] = trace.cache
    if trace.cache_similarity is not None:
        h["x-tiergate-cache-match"] = f"semantic {trace.cache_similarity:.3f}"
    if with_cost:
        cost, base, _ = costs(trace, prices)
        h["x-tiergate-cost-usd"] = f"{cost:.8f}"
        h["x-tiergate-baseline-cost-usd"] = f"{base:.8f}"
    if trace.degraded:
        h["x-tiergate-degraded"] = "true"
    if trace.fallbacks:
        h["x-tiergate-fallbacks"] = ",".join(trace.fallbacks)
    timing = [(n, v) for n, v in (("classify", trace.classify_ms), ("upstream", trace.upstream_ms)) if v is not None]
    if timing:  # the W3C Server-Timing header: browsers' dev tools and benchmarks read where the time went
        h["server-timing"] = ", ".join(f"{n};dur={v:.3f}" for n, v in timing)
    if trace.private_data:
        h["x-tiergate-private-data"] = ",".join(trace.private_data)
    if trace.cascade is not None:
        h["x-tiergate-cascade"] = trace.cascade
        if trace.draft_confidence is not None:
            h["x-tiergate-draft-confidence"] = f"{trace.draft_confidence:.4f}"
    return h


def ledger_record(trace: Trace, prices: PriceTable) -> LedgerRecord:
    """What the ledger keeps of this request."""
    cost, base, saved = costs(trace, prices)
    return LedgerRecord(
        ts=trace.ts,
        request_id=trace.request_id,
        endpoint=trace.endpoint,
        policy=trace.policy,
        requested_model=trace.requested_model,
        routed_model=trace.routed.name if trace.routed else None,
        tier=trace.routed.tier if trace.routed else None,
        score=trace.score,
        prompt_tokens=trace.usage.prompt_tokens,
        completion_tokens=trace.usage.completion_tokens,
        cached_tokens=trace.usage.cached_tokens,
        cost_usd=cost,
        baseline_model=trace.baseline_model,
        baseline_cost_usd=base,
        latency_ms=trace.elapsed_ms(),
        ttft_ms=trace.ttft_ms,
        status=trace.status,
        error_type=trace.error_type,
        fallbacks=list(trace.fallbacks),
        stream=trace.stream,
        degraded=trace.degraded,
        cache=trace.cache,
        saved_usd=saved,
        key_id=trace.key_id,
        end_user=trace.end_user[:END_USER_MAX] if trace.end_user else None,
        tags=trace.tags,
        private_data=f",{','.join(trace.private_data)}," if trace.private_data else None,
        prompt=trace.prompt,
        cascade=trace.cascade,
        draft_model=trace.draft_model,
        draft_confidence=trace.draft_confidence,
        draft_cost_usd=trace.draft_cost,
        usage_estimated=trace.usage_estimated,
        route=trace.route.name if trace.route else None,
    )
