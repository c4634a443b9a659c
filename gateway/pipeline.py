"""One chat request's steps, without HTTP: resolve the policy, classify, select, call with fallbacks, price, record.

Every request that reaches `ChatPipeline` leaves exactly one ledger record, whether it succeeds, fails upstream,
or is rejected for an unknown model; the record is written when the outcome is final (for streams: when the
stream ends, is broken off, or the client goes away).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from classifiers.base import Assessment
from classifiers.features import prompt_from_messages, scored_prompt, scoring_text
from classifiers.route_examples import RouteExamples
from gateway import privacy, steering, tags
from gateway.balancer import Deployments
from gateway.budgets import ModelBudgets
from gateway.calls import Calls
from gateway.cooldown import Cooldowns
from gateway.draft import confident_draft, fall_back_on_draft
from gateway.end_users import EndUserBudgets
from gateway.errors import (
    GatewayError,
    InvalidRequest,
    PermissionDenied,
    Unavailable,
    UpstreamFailed,
    from_unsatisfiable,
)
from gateway.flights import Flight, Flights
from gateway.inflight import InFlight
from gateway.judge import AddFeedback, Judging
from gateway.ledger import LedgerRecord
from gateway.model_names import resolve
from gateway.protocol import ChatCompletionRequest
from gateway.provider import UpstreamError
from gateway.relay import each, prepend, relay_stream
from gateway.response_cache import CacheDecision, ChatCache, replay, routed_target
from gateway.trace import Trace, cancelled, key_id, ledger_record, response_headers, spec_name, start_trace
from gateway.usage import answer_usage, usage_of
from router import cascade
from router.policy import ApiKey, ModelSpec, OnUnavailable, Policy, TiergateConfig
from router.pricing import PriceTable, Usage
from router.routes import RouteMatch, match
from router.select import Decision, NoModelAvailable, NotAllowed, Unsatisfiable, direct, select

ScoreFn = Callable[[str, int], Awaitable[float]]
AssessFn = Callable[[str, int], Awaitable[Assessment]]
COOLING = "cooling down after repeated failures"
FULL = "full (max_concurrency calls in flight)"
T = TypeVar("T")


def call_args(req: ChatCompletionRequest) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The messages and parameters a model is called with, dumped once: classified, then sent."""
    messages = [m.model_dump(exclude_none=True) for m in req.messages]
    params = req.sampling_params()
    if extras := req.extras():  # a deep copy since the body memo: made once
        # Parameters we don't model go to the upstream as they came; the upstream decides what they mean.
        params["extra_body"] = extras
    return messages, params


class Provider(Protocol):
    async def complete(
        self, spec: ModelSpec, messages: list[dict[str, Any]], params: dict[str, Any]
    ) -> dict[str, Any]: ...

    def stream(
        self, spec: ModelSpec, messages: list[dict[str, Any]], params: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]: ...


class Ledger(Protocol):
    def record(self, rec: LedgerRecord) -> None: ...


class Watch(Protocol):
    """What the caller watches for (gateway/disconnect.py: the client leaving), armed before a model is called;
    `gone` once the client has left (so a cancellation was the client's, not the server's)."""

    gone: bool

    def arm(self) -> None: ...


@dataclass(frozen=True)
class ChatResult:
    headers: dict[str, str]
    body: dict[str, Any] | None = None
    chunks: AsyncIterator[dict[str, Any]] | None = None


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
        cooldowns: Cooldowns | None = None,
        env: Mapping[str, str] | None = None,
        budgets: ModelBudgets | None = None,
        inflight: InFlight | None = None,
        end_users: EndUserBudgets | None = None,
        feedback: AddFeedback | None = None,
        assess: AssessFn | None = None,
        route_examples: Mapping[str, RouteExamples] | None = None,
    ) -> None:
        """`cooldowns` and `inflight` are the worker's record of failing servers and its count of calls in flight
        to each, handed on from pipeline to pipeline on reload; `env` says which servers' key variables are set
        (default: none needs one). A policy with routes is matched against them through `assess` (the score with
        its embedding) and `route_examples` (by policy name); without both, its routes are not read."""
        self.config = config
        self.cooldowns = cooldowns or Cooldowns(config.cooldown)
        self.deployments = Deployments(config, env or {}, inflight)
        self.calls = Calls(self.deployments, self.cooldowns, config.retry)
        self._hosted = frozenset(m.name for m in config.models if not m.local)
        self.budgets = budgets or ModelBudgets(config.models, lambda model, since: 0.0)
        self.end_users = end_users or EndUserBudgets(None, lambda user, since: 0.0)
        # `feedback` stores a judgement (the ledger's add_feedback); without it nothing is judged.
        self.judging = Judging(provider, prices, ledger.record, feedback)
        self.cache = cache or ChatCache(None, config)
        self.flights = Flights()  # identical cacheable calls in flight (gateway/flights.py)
        self.prices = prices
        self.score = score  # kept public: a reloaded policy file builds a new pipeline around the same classifier
        self.assess = assess
        self.route_examples = dict(route_examples or {})
        self._provider = provider
        self._ledger = ledger
        self.unavailable = frozenset(unavailable)

    # -- routing ---------------------------------------------------------------------------------------------
    def begin(
        self,
        req: ChatCompletionRequest,
        trace: Trace,
        api_key: ApiKey | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[Policy, Decision | None, str]:
        """Resolve the policy; for a named model, its decision (permissions checked before any cache lookup).
        Returns (policy, decision or None if the request is to be classified, cache target)."""
        trace.policy, policy, concrete = resolve(self.config, req.model, api_key)
        trace.steering = steering.parse(headers)  # after the policy: a refusal is booked under it
        trace.baseline_model = policy.baseline_model
        if policy.record_prompts or policy.private_data is not None:
            dumped = [m.model_dump() for m in req.messages]
            if policy.record_prompts:  # the text the classifier scores: a training row's prompt, if it is judged
                trace.prompt = scored_prompt(dumped)[0]
            if policy.private_data is not None:
                privacy.screen(self.config, policy, trace, concrete, dumped)
        if concrete is None:
            return policy, None, routed_target(trace.policy)
        if (cap := trace.steering.max_cost_usd) is not None:
            needs = req.needs()
            if (cost := self.prices.cost(concrete, Usage(needs.context_tokens, needs.expected_output_tokens))) > cap:
                raise InvalidRequest(
                    f"The model '{concrete}' would cost an estimated ${cost:.6g} for this request, over its"
                    f" '{steering.MAX_COST}' of ${cap:g}. Ask for a policy to be routed within it.",
                    steering.MAX_COST,
                    "max_cost_exceeded",
                )
        try:
            return policy, direct(self.config, policy, concrete, self.unavailable, req.content_needs()), concrete
        except NotAllowed as e:
            raise PermissionDenied(str(e), "model", "model_not_allowed") from e
        except NoModelAvailable as e:
            raise Unavailable(e.reason, "model", "no_model_available") from e
        except Unsatisfiable as e:
            raise from_unsatisfiable(e) from e

    async def route(
        self,
        req: ChatCompletionRequest,
        trace: Trace,
        policy: Policy,
        messages: list[dict[str, Any]],
        cascading: bool = False,
    ) -> tuple[Decision, cascade.CascadePlan | None]:
        """Classify the prompt (`messages`: the request's, as sent upstream) and choose the cheapest adequate model
        with its fallback chain; with `cascading` (non-stream requests), also the policy's cascade plan, if any."""
        try:
            text, turns = prompt_from_messages(messages)
            t0 = time.perf_counter()
            score, route = await self._classify(trace.policy, policy, text, scoring_text(messages, text, turns), turns)
            trace.score, trace.route = score, route
            trace.classify_ms = (time.perf_counter() - t0) * 1000.0
            needs = req.needs()
            over = self._passed_over()
            spent = await self.budgets.spent() if self.budgets.active else None
            down = self.unavailable | spent if spent else self.unavailable  # a model past its budget is passed over
            if trace.private_data:
                down = down | self._hosted  # kept on local models (`_keep_private` refused what it had to)
            decision = select(self.config, policy, score, needs, self.prices, down, over, trace.steering, route)
        except NotAllowed as e:
            raise PermissionDenied(str(e), "model", "model_not_allowed") from e
        except NoModelAvailable as e:
            raise Unavailable(e.reason, "model", "no_model_available") from e
        except Unsatisfiable as e:
            raise from_unsatisfiable(e) from e
        trace.degraded = decision.degraded
        for name in spent or ():
            if decision.skipped.get(name) == "unavailable":  # select knows only "unavailable"; say which kind
                decision.skipped[name] = "budget spent"
        if trace.private_data:
            for name in self._hosted:
                if decision.skipped.get(name) == "unavailable":
                    decision.skipped[name] = (
                        f"hosted, and the request holds private data ({', '.join(trace.private_data)})"
                    )
        # A route is the operator's own call for prompts of its kind: such a prompt is not drafted and escalated.
        plan = (
            cascade.plan(self.config, policy, score, needs, self.prices, down, decision, over, trace.steering)
            if cascading and route is None
            else None
        )
        return decision, plan

    async def _classify(
        self, name: str, policy: Policy, text: str, scored: str, turns: int
    ) -> tuple[float, RouteMatch | None]:
        """The score of `scored` (the last user turn `text`, or a short one with the turns before it) and, under a
        policy (`name`) with routes, the route `text` matches, if any: one encoder call when both are the same."""
        examples = self.route_examples.get(name) if policy.routes else None
        if examples is None or self.assess is None:
            return await self.score(scored, turns), None
        if scored == text:
            found = await self.assess(text, turns)
            return found.score, match(policy.routes, examples.similarities(found.embedding), turns)
        # A route matches a reply by its own words ("thanks" closes whatever came before); the score reads the
        # conversation. Both go to the classifier's batcher at once.
        found, score = await asyncio.gather(self.assess(text, turns), self.score(scored, turns))
        return score, match(policy.routes, examples.similarities(found.embedding), turns)

    def _passed_over(self) -> dict[str, str]:
        """Models routing passes over for now, unless nothing else is left, and why."""
        over = dict.fromkeys(self.deployments.cooling_models(self.cooldowns.cooling()), COOLING)
        for name in self.deployments.full_models():
            over.setdefault(name, FULL)
        return over

    async def within_budget(self, trace: Trace, decision: Decision) -> None:
        """A request naming a model past its budget is refused (a hit from the cache, which costs nothing, is not)."""
        name = decision.chain[0].name
        if name in await self.budgets.spent():
            raise trace.fail(self.budgets.refusal(name))

    # -- calling ---------------------------------------------------------------------------------------------
    async def _cached(
        self, req: ChatCompletionRequest, trace: Trace, target: str, cd: CacheDecision, key: str
    ) -> dict[str, Any] | None:
        if cd.bypass:
            return None
        body = await self.cache.lookup(key)
        if body is None and (sem := await self.cache.lookup_semantic(req, target, trace.policy)):
            body, trace.cache_similarity = sem
        return self._hit(trace, body)

    def _hit(self, trace: Trace, body: dict[str, Any] | None) -> dict[str, Any] | None:
        """`body` served as a cache hit, if there is one and the model that answered is still configured (its name
        and tier go into headers and the ledger)."""
        spec = self.config.model(str(body.get("model"))) if body is not None else None
        trace.cache = "miss" if spec is None else "hit"
        if body is None or spec is None:
            return None
        trace.routed = spec
        trace.usage = usage_of(body) or Usage(0, 0)
        return body

    async def _open(
        self,
        req: ChatCompletionRequest,
        trace: Trace,
        api_key: ApiKey | None,
        headers: Mapping[str, str] | None,
        watch: Watch | None,
    ) -> tuple[Policy, Decision | None, str, CacheDecision, str, dict[str, Any] | None, Flight | None]:
        """What a whole answer and a stream both do first: resolve and admit the request, and look it up in the
        cache (and, for a whole answer, among identical calls in flight). On a miss (no cached body), a model is to
        be called: the watch is armed and the budget checked; the last item is the flight the call leads, if any."""
        policy, decision, target = self.begin(req, trace, api_key, headers)
        if self.end_users.active:
            await self.end_users.admit(req.user)
        cd = self.cache.decide(req, trace.policy, headers or {})
        key = self.cache.key(req, target, trace.policy) if cd.lookup or cd.store else ""
        hit = await self._cached(req, trace, target, cd, key)
        # A whole answer takes part in single flights (gateway/flights.py); a stream does not, since waiting for
        # another call's whole answer would hold back its first token.
        flies = bool(key) and not req.stream
        if hit is None and flies and cd.lookup and key in self.flights:
            if watch is not None:
                watch.arm()  # waiting on another call: the client leaving ends the wait, on the record as a 499
            hit = self._hit(trace, await self.flights.follow(key))  # that call's answer, if it has one
        flight = None
        if hit is None:
            if watch is not None:
                watch.arm()
            if decision is not None and self.budgets.active:
                await self.within_budget(trace, decision)
            # Last, with nothing after it that can raise: the caller's `finally` lands what it is handed, and a
            # flight opened by a request refused here would have held every identical request after it for ever.
            flight = self.flights.lead(key) if flies and cd.store else None
        return policy, decision, target, cd, key, hit, flight

    async def complete(
        self,
        req: ChatCompletionRequest,
        request_id: str,
        headers: Mapping[str, str] | None = None,
        api_key: ApiKey | None = None,
        endpoint: str = "chat.completions",
        watch: Watch | None = None,
    ) -> ChatResult:
        trace = start_trace(req, request_id, False, headers, api_key, endpoint)
        flight, landed = None, None
        try:
            policy, decision, target, cd, key, hit, flight = await self._open(req, trace, api_key, headers, watch)
            if hit is not None:
                return ChatResult(response_headers(trace, self.prices, with_cost=True), body=hit)
            plan = None
            messages, params = call_args(req)  # dumped once: classified, then sent
            if decision is None:
                # A draft is judged by one answer's confidence, so a request for several answers is not cascaded.
                decision, plan = await self.route(req, trace, policy, messages, cascading=(req.n or 1) == 1)
            t0 = time.perf_counter()
            body, draft = None, None
            if plan is not None:
                body, draft = await confident_draft(
                    req,
                    trace,
                    plan,
                    messages,
                    params,
                    self._provider.complete,
                    self.deployments,
                    self.cooldowns,
                    self.prices,
                )
            if body is None:
                try:
                    answer, slot = await self.calls.first_success(
                        trace,
                        plan.escalate if plan is not None else decision,
                        lambda spec: self._provider.complete(spec, messages, params),
                    )
                except (UpstreamFailed, Unavailable):
                    if draft is None or policy.on_unavailable is not OnUnavailable.best_effort:
                        raise
                    body = fall_back_on_draft(req, trace, draft)
                else:
                    slot.release()  # the whole answer is in: the server's slot is free for the next call
                    body = answer
            trace.upstream_ms = (time.perf_counter() - t0) * 1000.0
            assert trace.routed is not None
            trace.usage, trace.usage_estimated = answer_usage(req, body)
            body["model"] = trace.routed.name
            # A degraded answer (a weaker model than the request needed stood in) is neither stored nor handed to
            # identical requests waiting on this one: replayed as a hit it would carry no mark, and would outlive
            # the outage that made it for the cache's whole TTL. They make their own calls.
            if cd.store and not trace.degraded:
                self.cache.save(req, target, trace.policy, key, body, cd.ttl_s)
            if self.judging.wants(policy.judge, trace.routed):
                self._judge(policy, trace, messages, body)
            landed = None if trace.degraded else body
            return ChatResult(response_headers(trace, self.prices, with_cost=True), body=body)
        except GatewayError as e:
            if trace.status == 200:
                trace.fail(e)
            raise
        except Exception:
            trace.status, trace.error_type = 500, "server_error"  # a bug: the client gets a 500, so does the record
            raise
        except BaseException:
            cancelled(trace, req, by_client=watch is not None and watch.gone)
            raise
        finally:
            if flight is not None:
                flight.land(landed)  # None (no answer): each call that waited for it makes its own
            self._ledger.record(ledger_record(trace, self.prices))

    async def stream(
        self,
        req: ChatCompletionRequest,
        request_id: str,
        headers: Mapping[str, str] | None = None,
        api_key: ApiKey | None = None,
        endpoint: str = "chat.completions",
        watch: Watch | None = None,
    ) -> ChatResult:
        """Fallback is possible until the first chunk arrives; after that, errors go into the stream itself."""
        trace = start_trace(req, request_id, True, headers, api_key, endpoint)
        try:
            policy, decision, target, cd, key, hit, _ = await self._open(req, trace, api_key, headers, watch)
            if hit is not None:
                self._ledger.record(ledger_record(trace, self.prices))
                return ChatResult(
                    response_headers(trace, self.prices, with_cost=False), chunks=replay(hit, req.wants_usage_chunk())
                )
            messages, params = call_args(req)
            if decision is None:
                decision, _ = await self.route(req, trace, policy, messages)  # streams are never cascaded

            async def open_stream(spec: ModelSpec) -> tuple[dict[str, Any], AsyncIterator[dict[str, Any]]]:
                chunks = self._provider.stream(spec, messages, params)
                try:
                    if (wait := spec.first_token_timeout_s) is None:
                        return await anext(chunks), chunks
                    # Cancelled at the deadline, the stream closes itself (and its connection) on the way out.
                    return await asyncio.wait_for(anext(chunks), wait), chunks
                except StopAsyncIteration:
                    raise UpstreamError(spec.name, 502, "empty stream", True) from None
                except TimeoutError:
                    raise UpstreamError(spec.name, 504, f"no first chunk within {wait:g}s", True) from None

            (first, rest), slot = await self.calls.first_success(trace, decision, open_stream)
            trace.ttft_ms = trace.elapsed_ms()
            when_done: list[Callable[[dict[str, Any]], None]] = []  # with the whole answer, once the stream ends
            if cd.store and not trace.degraded:  # as for a whole answer (above): a degraded one is not stored
                when_done.append(
                    lambda body: self.cache.save(
                        req, target, trace.policy, key, {**body, "model": spec_name(trace)}, cd.ttl_s
                    )
                )
            if self.judging.wants(policy.judge, trace.routed):
                when_done.append(lambda body: self._judge(policy, trace, messages, body))
            relay = relay_stream(
                trace,
                req,
                first,
                rest,
                slot,
                self._record,
                self.cooldowns.failed,
                each(when_done) if when_done else None,
            )
        except GatewayError as e:
            if trace.status == 200:
                trace.fail(e)
            self._ledger.record(ledger_record(trace, self.prices))
            raise
        except Exception:
            trace.status, trace.error_type = 500, "server_error"
            self._ledger.record(ledger_record(trace, self.prices))
            raise
        except BaseException:
            cancelled(trace, req, by_client=watch is not None and watch.gone)
            self._ledger.record(ledger_record(trace, self.prices))
            raise
        # Started here, so that its `finally` (the ledger record, the slot's release) runs even if the client leaves
        # before the response begins: the event loop closes a started generator it drops, never a new one. From
        # here on the relay keeps the record, so this is outside the `try` above (one record per request).
        head = await anext(relay, None)
        chunks = relay if head is None else prepend(head, relay)
        return ChatResult(response_headers(trace, self.prices, with_cost=False), chunks=chunks)

    def _record(self, trace: Trace) -> None:
        self._ledger.record(ledger_record(trace, self.prices))

    def _judge(self, policy: Policy, trace: Trace, messages: list[dict[str, Any]], body: dict[str, Any]) -> None:
        """Hand a whole answer to the judge (gateway/judge.py), in the background."""
        assert policy.judge is not None
        judge = self.config.model(policy.judge.model)
        choices = body.get("choices") or []
        answer = choices[0].get("message") if choices and isinstance(choices[0], dict) else None
        text = answer.get("content") if isinstance(answer, dict) else None
        if judge is not None and isinstance(text, str) and text.strip():  # tool calls are not graded
            self.judging.submit(judge, trace.policy, trace.request_id, messages, text)

    def reject(
        self,
        request_id: str,
        requested_model: str,
        err: GatewayError,
        stream: bool = False,
        headers: Mapping[str, str] | None = None,
        api_key: ApiKey | None = None,
        endpoint: str = "chat.completions",
    ) -> None:
        """The ledger record of a request refused before routing (malformed body, bad parameter, a key's limit),
        under the policy its model names, when it names one, so that per-policy reports count it."""
        h = headers or {}
        # Its tags too, when they are well formed: a team's refused requests are its own to see.
        trace = Trace(request_id, requested_model, stream, endpoint, key_id=key_id(h, api_key), tags=tags.column(h))
        with suppress(GatewayError):  # an unknown or forbidden name, or none: no policy to book it under
            trace.policy = resolve(self.config, requested_model, api_key)[0]
        trace.fail(err)
        self._ledger.record(ledger_record(trace, self.prices))
