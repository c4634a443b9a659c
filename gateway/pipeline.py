"""One chat request's steps, without HTTP: resolve the policy, classify, select, call with fallbacks, price, record.

Every request that reaches `ChatPipeline` leaves exactly one ledger record, whether it succeeds, fails upstream,
or is rejected for an unknown model; the record is written when the outcome is final (for streams: when the
stream ends, is broken off, or the client goes away).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from classifiers.features import prompt_from_messages
from gateway.errors import GatewayError, InvalidRequest, NotFound, PermissionDenied, Unavailable, UpstreamFailed
from gateway.ledger import LedgerRecord
from gateway.protocol import ChatCompletionRequest
from gateway.provider import UpstreamError
from gateway.response_cache import CacheDecision, ChatCache, assemble, replay, routed_target
from router import cascade
from router.policy import ModelSpec, Policy, TiergateConfig
from router.pricing import PriceTable, Usage
from router.select import Decision, NoModelAvailable, NotAllowed, Unsatisfiable, direct, select

ScoreFn = Callable[[str, int], Awaitable[float]]
T = TypeVar("T")


class Provider(Protocol):
    async def complete(
        self, spec: ModelSpec, messages: list[dict[str, Any]], params: dict[str, Any]
    ) -> dict[str, Any]: ...

    def stream(
        self, spec: ModelSpec, messages: list[dict[str, Any]], params: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]: ...


class Ledger(Protocol):
    def record(self, rec: LedgerRecord) -> None: ...


@dataclass
class Trace:
    """What is known about a request so far; becomes its ledger record."""

    request_id: str
    requested_model: str
    stream: bool
    started: float = field(default_factory=time.perf_counter)
    ts: float = field(default_factory=time.time)
    policy: str = ""
    baseline_model: str | None = None
    routed: ModelSpec | None = None
    score: float | None = None
    degraded: bool = False
    fallbacks: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=lambda: Usage(0, 0))
    usage_estimated: bool = False  # the upstream reported none: `usage` is estimate_usage's
    ttft_ms: float | None = None
    status: int = 200
    error_type: str | None = None
    cache: str = "bypass"
    cache_similarity: float | None = None  # set on a semantic hit
    key_id: str | None = None
    prompt: str | None = None  # kept only when the policy records prompts
    cascade: str | None = None  # kept / escalated / draft_failed, for requests the policy cascaded
    draft_model: str | None = None
    draft_confidence: float | None = None
    draft_cost: float = 0.0  # what an escalated draft cost, on top of the answer's own cost
    classify_ms: float | None = None  # time to score the prompt (Server-Timing)
    upstream_ms: float | None = None  # time in upstream calls, fallbacks and drafts included (non-streams)

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0

    def fail(self, err: GatewayError) -> GatewayError:
        self.status, self.error_type = err.status, err.type
        return err


@dataclass(frozen=True)
class ChatResult:
    headers: dict[str, str]
    body: dict[str, Any] | None = None
    chunks: AsyncIterator[dict[str, Any]] | None = None


def usage_of(body: dict[str, Any]) -> Usage | None:
    u = body.get("usage")
    if not isinstance(u, dict):
        return None
    return Usage(int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0))


def content_chars(parts: Iterable[Any]) -> int:
    """Characters of generated text in answer messages or stream deltas: content and tool-call arguments.
    Tolerant of any shape: it reads what upstreams sent."""
    n = 0
    for p in parts:
        if not isinstance(p, Mapping):
            continue
        content = p.get("content")
        n += len(content) if isinstance(content, str) else 0
        calls = p.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            fn = call.get("function") if isinstance(call, Mapping) else None
            n += len(str(fn.get("arguments") or "")) if isinstance(fn, Mapping) else 0
    return n


def estimate_usage(req: ChatCompletionRequest, completion_tokens: int) -> Usage:
    """Tokens an upstream did not report, so the record's cost is an estimate, not a silent 0: the prompt at the
    router's ~4 characters a token, the answer as the caller counted it."""
    return Usage(req.needs().context_tokens, completion_tokens)


def key_id(headers: Mapping[str, str]) -> str | None:
    """A stable, irreversible id for the caller's API key (the bearer token), for per-key reporting."""
    auth = headers.get("authorization", "")
    token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
    return "key-" + hashlib.sha256(token.encode()).hexdigest()[:16] if token else None


# The request field a client changes to satisfy each kind of need (router/select.py's Unmet.kind).
_NEED_PARAM = {"tools": "tools", "vision": "messages", "json_mode": "response_format", "context": "messages"}


def unsatisfiable(e: Unsatisfiable) -> InvalidRequest:
    """A request no allowed model could ever serve, as OpenAI reports one a model cannot: a 400 (not a 503, which
    clients such as the openai SDK retry), `context_length_exceeded` when it is too long for every model."""
    code = "context_length_exceeded" if e.need == "context" else "unsupported_capability"
    return InvalidRequest(e.reason[0].upper() + e.reason[1:] + ".", _NEED_PARAM.get(e.need or ""), code)


def spec_name(trace: Trace) -> str:
    assert trace.routed is not None
    return trace.routed.name


class ChatPipeline:
    def __init__(
        self,
        config: TiergateConfig,
        prices: PriceTable,
        score: ScoreFn,
        provider: Provider,
        ledger: Ledger,
        unavailable: Collection[str],
        cache: ChatCache | None = None,
    ) -> None:
        self.config = config
        self.cache = cache or ChatCache(None, config)
        self.prices = prices
        self._score = score
        self._provider = provider
        self._ledger = ledger
        self.unavailable = frozenset(unavailable)

    # -- routing ---------------------------------------------------------------------------------------------
    def resolve(self, model: str) -> tuple[str, Policy, str | None]:
        """(policy name, policy, concrete model or None) for the request's `model` field."""
        cfg = self.config
        if model == "auto":
            return cfg.default_policy, cfg.policies[cfg.default_policy], None
        if model in cfg.policies:
            return model, cfg.policies[model], None
        if cfg.model(model) is not None:
            return cfg.default_policy, cfg.policies[cfg.default_policy], model
        known = ["auto", *sorted(cfg.policies), *sorted(m.name for m in cfg.models)]
        raise NotFound(
            f"The model '{model}' does not exist. Use one of: {', '.join(known)}.", "model", "model_not_found"
        )

    def begin(self, req: ChatCompletionRequest, trace: Trace) -> tuple[Policy, Decision | None, str]:
        """Resolve the policy; for a named model, its decision (permissions checked before any cache lookup).
        Returns (policy, decision or None if the request is to be classified, cache target)."""
        trace.policy, policy, concrete = self.resolve(req.model)
        trace.baseline_model = policy.baseline_model
        if policy.record_prompts:
            trace.prompt = prompt_from_messages([m.model_dump() for m in req.messages])[0]
        if concrete is None:
            return policy, None, routed_target(trace.policy)
        try:
            return policy, direct(self.config, policy, concrete, self.unavailable), concrete
        except NotAllowed as e:
            raise PermissionDenied(str(e), "model", "model_not_allowed") from e
        except NoModelAvailable as e:
            raise Unavailable(e.reason, "model", "no_model_available") from e

    async def route(
        self, req: ChatCompletionRequest, trace: Trace, policy: Policy, cascading: bool = False
    ) -> tuple[Decision, cascade.CascadePlan | None]:
        """Classify the prompt and choose the cheapest adequate model with its fallback chain; with `cascading`
        (non-stream requests), also the policy's cascade plan for this prompt, if any."""
        try:
            text, turns = prompt_from_messages([m.model_dump() for m in req.messages])
            t0 = time.perf_counter()
            trace.score = await self._score(text, turns)
            trace.classify_ms = (time.perf_counter() - t0) * 1000.0
            needs = req.needs()
            decision = select(self.config, policy, trace.score, needs, self.prices, self.unavailable)
        except NotAllowed as e:
            raise PermissionDenied(str(e), "model", "model_not_allowed") from e
        except NoModelAvailable as e:
            raise Unavailable(e.reason, "model", "no_model_available") from e
        except Unsatisfiable as e:
            raise unsatisfiable(e) from e
        trace.degraded = decision.degraded
        plan = (
            cascade.plan(self.config, policy, trace.score, needs, self.prices, self.unavailable, decision)
            if cascading
            else None
        )
        return decision, plan

    # -- calling ---------------------------------------------------------------------------------------------
    @staticmethod
    def _call_args(req: ChatCompletionRequest) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        messages = [m.model_dump(exclude_none=True) for m in req.messages]
        params = req.sampling_params()
        if req.extras():
            # Parameters we don't model go to the upstream as they came; the upstream decides what they mean.
            params["extra_body"] = req.extras()
        return messages, params

    def _exhausted(self, errors: list[UpstreamError]) -> UpstreamFailed:
        detail = "; ".join(f"{e.model}: HTTP {e.status}" for e in errors)
        status = 504 if errors and all(e.status in (408, 504) for e in errors) else 502
        return UpstreamFailed(f"Every candidate model failed upstream ({detail}).", status)

    @staticmethod
    def _client_fault(e: UpstreamError) -> InvalidRequest:
        return InvalidRequest(
            f"The upstream model {e.model} rejected the request: {e.message}", None, "upstream_rejected"
        )

    async def _first_success(self, trace: Trace, decision: Decision, attempt: Callable[[ModelSpec], Awaitable[T]]) -> T:
        """Try the chain in order; a retryable failure moves on, the client's own fault stops at once."""
        errors: list[UpstreamError] = []
        for spec in decision.chain:
            try:
                result = await attempt(spec)
            except UpstreamError as e:
                if not e.retryable:
                    raise trace.fail(self._client_fault(e)) from e
                errors.append(e)
                trace.fallbacks.append(spec.name)
                continue
            trace.routed = spec
            return result
        raise trace.fail(self._exhausted(errors))

    async def _cached(
        self, req: ChatCompletionRequest, trace: Trace, target: str, cd: CacheDecision, key: str
    ) -> dict[str, Any] | None:
        if cd.bypass:
            return None
        body = await self.cache.lookup(key)
        if body is None and (sem := await self.cache.lookup_semantic(req, target, trace.policy)):
            body, trace.cache_similarity = sem
        # The model that answered must still be configured: its name and tier go into headers and the ledger.
        spec = self.config.model(str(body.get("model"))) if body is not None else None
        trace.cache = "miss" if spec is None else "hit"
        if body is None or spec is None:
            return None
        trace.routed = spec
        trace.usage = usage_of(body) or Usage(0, 0)
        return body

    async def complete(
        self, req: ChatCompletionRequest, request_id: str, headers: Mapping[str, str] | None = None
    ) -> ChatResult:
        trace = Trace(request_id, req.model, stream=False, key_id=key_id(headers or {}))
        try:
            policy, decision, target = self.begin(req, trace)
            cd = self.cache.decide(req, trace.policy, headers or {})
            key = self.cache.key(req, target, trace.policy) if cd.lookup or cd.store else ""
            if (hit := await self._cached(req, trace, target, cd, key)) is not None:
                return ChatResult(self.headers(trace, with_cost=True), body=hit)
            plan = None
            if decision is None:
                decision, plan = await self.route(req, trace, policy, cascading=True)
            messages, params = self._call_args(req)
            t0 = time.perf_counter()
            body = (await self._draft(req, trace, plan, messages, params)) if plan is not None else None
            if body is None:
                body = await self._first_success(
                    trace,
                    plan.escalate if plan is not None else decision,
                    lambda spec: self._provider.complete(spec, messages, params),
                )
            trace.upstream_ms = (time.perf_counter() - t0) * 1000.0
            assert trace.routed is not None
            if (usage := usage_of(body)) is None:
                answers = [c.get("message") for c in body.get("choices") or () if isinstance(c, dict)]
                usage, trace.usage_estimated = estimate_usage(req, -(-content_chars(answers) // 4)), True
            trace.usage = usage
            body["model"] = trace.routed.name
            if cd.store:
                self.cache.save(req, target, trace.policy, key, body, cd.ttl_s)
            return ChatResult(self.headers(trace, with_cost=True), body=body)
        except GatewayError as e:
            if trace.status == 200:
                trace.fail(e)
            raise
        except Exception:
            trace.status, trace.error_type = 500, "server_error"  # a bug: the client gets a 500, so does the record
            raise
        finally:
            self._ledger.record(self.record(trace))

    async def _draft(
        self,
        req: ChatCompletionRequest,
        trace: Trace,
        plan: cascade.CascadePlan,
        messages: list[dict[str, Any]],
        params: dict[str, Any],
    ) -> dict[str, Any] | None:
        """The draft answer if its model is confident enough, else None (the caller escalates).

        Any failure of the draft (upstream error, refusal, no log-probabilities) escalates; the client never sees
        it. An escalated draft's cost is added to the request's."""
        for spec in plan.draft:
            try:
                body = await self._provider.complete(spec, messages, {**params, "logprobs": True})
            except UpstreamError:
                trace.fallbacks.append(spec.name)
                continue
            conf = cascade.confidence(cascade.answer_logprobs(body))
            trace.draft_model, trace.draft_confidence = spec.name, conf
            if conf is not None and conf >= plan.min_confidence:
                trace.cascade, trace.routed = "kept", spec
                if not req.logprobs:  # asked for the judgement, not by the client
                    for choice in body.get("choices") or []:
                        if isinstance(choice, dict):
                            choice.pop("logprobs", None)
                return body
            trace.cascade = "escalated"
            trace.draft_cost = self.prices.cost(spec.name, usage_of(body) or Usage(0, 0))
            return None
        trace.cascade = "draft_failed"
        return None

    async def stream(
        self, req: ChatCompletionRequest, request_id: str, headers: Mapping[str, str] | None = None
    ) -> ChatResult:
        """Fallback is possible until the first chunk arrives; after that, errors go into the stream itself."""
        trace = Trace(request_id, req.model, stream=True, key_id=key_id(headers or {}))
        try:
            policy, decision, target = self.begin(req, trace)
            cd = self.cache.decide(req, trace.policy, headers or {})
            key = self.cache.key(req, target, trace.policy) if cd.lookup or cd.store else ""
            if (hit := await self._cached(req, trace, target, cd, key)) is not None:
                self._ledger.record(self.record(trace))
                return ChatResult(self.headers(trace, with_cost=False), chunks=replay(hit, req.wants_usage_chunk()))
            if decision is None:
                decision, _ = await self.route(req, trace, policy)  # streams are never cascaded
            messages, params = self._call_args(req)

            async def open_stream(spec: ModelSpec) -> tuple[dict[str, Any], AsyncIterator[dict[str, Any]]]:
                chunks = self._provider.stream(spec, messages, params)
                try:
                    return await anext(chunks), chunks
                except StopAsyncIteration:
                    raise UpstreamError(spec.name, 502, "empty stream", True) from None

            first, rest = await self._first_success(trace, decision, open_stream)
            trace.ttft_ms = trace.elapsed_ms()
            on_done = (
                (
                    lambda body: self.cache.save(
                        req, target, trace.policy, key, {**body, "model": spec_name(trace)}, cd.ttl_s
                    )
                )
                if cd.store
                else None
            )
            relay = self._relay(trace, req, first, rest, on_done)
            return ChatResult(self.headers(trace, with_cost=False), chunks=relay)
        except GatewayError as e:
            if trace.status == 200:
                trace.fail(e)
            self._ledger.record(self.record(trace))
            raise
        except Exception:
            trace.status, trace.error_type = 500, "server_error"
            self._ledger.record(self.record(trace))
            raise

    async def _relay(
        self,
        trace: Trace,
        req: ChatCompletionRequest,
        first: dict[str, Any],
        rest: AsyncIterator[dict[str, Any]],
        on_done: Callable[[dict[str, Any]], None] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield the upstream's chunks renamed to our model; an error dict ends a broken stream.

        Usage is always asked of the upstream (the ledger needs it) but only passed on when the client asked. A
        stream that ends without it (cut short by the client or the upstream, or a server that never sends it)
        is recorded with estimated usage: what was generated until then is billed all the same.
        """
        assert trace.routed is not None
        include_usage = req.wants_usage_chunk()
        seen: list[dict[str, Any]] = []
        got_usage = finished = False
        pieces = chars = 0  # generated deltas and their characters, for the estimate
        try:
            chunk: dict[str, Any] | None = first
            while chunk is not None:
                if on_done is not None:
                    seen.append(dict(chunk))  # below we only set "model" and drop "usage" at the top level
                if (u := usage_of(chunk)) is not None:
                    trace.usage, got_usage = u, True
                    if not include_usage:
                        chunk.pop("usage")
                if choices := [c for c in chunk.get("choices") or () if isinstance(c, dict)]:
                    finished = finished or any(c.get("finish_reason") for c in choices)
                    if not got_usage:
                        n = content_chars(c.get("delta") for c in choices)
                        pieces, chars = pieces + (n > 0), chars + n
                chunk["model"] = trace.routed.name
                if include_usage or chunk.get("choices"):
                    yield chunk
                chunk = await anext(rest, None)
            if not finished:
                # Every OpenAI-compatible server ends an answer with a finish_reason. A stream that stops before one
                # was cut (the upstream died, or closed a close-delimited body early); relayed as it is, the
                # client would take half an answer for a whole one.
                raise UpstreamError(trace.routed.name, 502, "the stream ended before the answer did", False)
            if on_done is not None and (body := assemble(seen)) is not None:
                on_done(body)
        except UpstreamError as e:
            err = trace.fail(UpstreamFailed(f"The upstream model {e.model} failed mid-stream: HTTP {e.status}."))
            yield {"error": err.body().error.model_dump()}
        except BaseException:
            # The client went away (cancellation) or we broke: the record says so, then the error propagates.
            trace.status, trace.error_type = 499, "client_closed"
            raise
        finally:
            if not got_usage:
                # Streams send about one token a delta; a server that packs several is counted by characters.
                trace.usage, trace.usage_estimated = estimate_usage(req, max(pieces, -(-chars // 4))), True
            self._ledger.record(self.record(trace))

    def reject(
        self,
        request_id: str,
        requested_model: str,
        err: GatewayError,
        stream: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """The ledger record of a request refused before routing (malformed body, bad parameter)."""
        trace = Trace(request_id, requested_model, stream=stream, key_id=key_id(headers or {}))
        trace.fail(err)
        self._ledger.record(self.record(trace))

    # -- accounting ------------------------------------------------------------------------------------------
    def costs(self, trace: Trace) -> tuple[float, float, float]:
        """(cost, baseline cost, saved by the cache): a hit costs nothing and saves what the model would have cost."""
        cost = (self.prices.cost(trace.routed.name, trace.usage) if trace.routed else 0.0) + trace.draft_cost
        base = self.prices.cost(trace.baseline_model, trace.usage) if trace.baseline_model else 0.0
        return (0.0, base, cost) if trace.cache == "hit" else (cost, base, 0.0)

    def headers(self, trace: Trace, with_cost: bool) -> dict[str, str]:
        assert trace.routed is not None
        h = {
            "x-request-id": trace.request_id,
            "x-tiergate-model": trace.routed.name,
            "x-tiergate-tier": str(trace.routed.tier),
            "x-tiergate-policy": trace.policy,
        }
        if trace.score is not None:
            h["x-tiergate-score"] = f"{trace.score:.4f}"
        h["x-tiergate-cache"] = trace.cache
        if trace.cache_similarity is not None:
            h["x-tiergate-cache-match"] = f"semantic {trace.cache_similarity:.3f}"
        if with_cost:
            cost, base, _ = self.costs(trace)
            h["x-tiergate-cost-usd"] = f"{cost:.8f}"
            h["x-tiergate-baseline-cost-usd"] = f"{base:.8f}"
        if trace.degraded:
            h["x-tiergate-degraded"] = "true"
        if trace.fallbacks:
            h["x-tiergate-fallbacks"] = ",".join(trace.fallbacks)
        timing = [
            (n, v) for n, v in (("classify", trace.classify_ms), ("upstream", trace.upstream_ms)) if v is not None
        ]
        if timing:  # the W3C Server-Timing header: browsers' dev tools and benchmarks read where the time went
            h["server-timing"] = ", ".join(f"{n};dur={v:.3f}" for n, v in timing)
        if trace.cascade is not None:
            h["x-tiergate-cascade"] = trace.cascade
            if trace.draft_confidence is not None:
                h["x-tiergate-draft-confidence"] = f"{trace.draft_confidence:.4f}"
        return h

    def record(self, trace: Trace) -> LedgerRecord:
        cost, base, saved = self.costs(trace)
        return LedgerRecord(
            ts=trace.ts,
            request_id=trace.request_id,
            policy=trace.policy,
            requested_model=trace.requested_model,
            routed_model=trace.routed.name if trace.routed else None,
            tier=trace.routed.tier if trace.routed else None,
            score=trace.score,
            prompt_tokens=trace.usage.prompt_tokens,
            completion_tokens=trace.usage.completion_tokens,
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
            prompt=trace.prompt,
            cascade=trace.cascade,
            draft_model=trace.draft_model,
            draft_confidence=trace.draft_confidence,
            draft_cost_usd=trace.draft_cost,
            usage_estimated=trace.usage_estimated,
        )
