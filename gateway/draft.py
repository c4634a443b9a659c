"""Cascade mode's first step: a draft answer from the cheapest tier, kept when its own confidence (llama.cpp's token
log-probabilities, router/cascade.py) reaches the policy's bar, else given up for the escalation chain."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from gateway.balancer import Deployments
from gateway.cooldown import Cooldowns
from gateway.protocol import ChatCompletionRequest
from gateway.provider import UpstreamError
from gateway.trace import Trace
from gateway.usage import usage_of
from router import cascade
from router.policy import ModelSpec
from router.pricing import PriceTable, Usage

Complete = Callable[[ModelSpec, list[dict[str, Any]], dict[str, Any]], Awaitable[dict[str, Any]]]
# A draft answer given up for the escalation chain: its model and body, kept in case the whole chain fails.
Unconfident = tuple[ModelSpec, dict[str, Any]]


async def confident_draft(
    req: ChatCompletionRequest,
    trace: Trace,
    plan: cascade.CascadePlan,
    messages: list[dict[str, Any]],
    params: dict[str, Any],
    complete: Complete,
    deployments: Deployments,
    cooldowns: Cooldowns,
    prices: PriceTable,
) -> tuple[dict[str, Any] | None, Unconfident | None]:
    """The draft answer if its model is confident enough (the caller returns it), else None and, if there was an
    answer, the unconfident draft (the caller escalates, and may fall back on it: `fall_back_on_draft`).

    Any failure of the draft (upstream error, refusal, no log-probabilities) escalates; the client never sees
    it. An escalated draft's cost is added to the request's."""
    for spec in plan.draft:
        server, target = deployments.order(spec, cooldowns.cooling())[0]  # one try per draft model
        if (slot := deployments.inflight.try_acquire(server)) is None:
            continue  # a draft is optional: with its server full, escalating beats waiting
        try:
            body = await complete(target, messages, {**params, "logprobs": True})
        except UpstreamError as e:
            cooldowns.failed(e, server, trace.unchecked)
            trace.fallbacks.append(spec.name)
            continue
        finally:
            slot.release()
        cooldowns.succeeded(server)
        conf = cascade.confidence(cascade.answer_logprobs(body))
        trace.draft_model, trace.draft_confidence = spec.name, conf
        if conf is not None and conf >= plan.min_confidence:
            trace.cascade, trace.routed = "kept", spec
            return _as_answer(req, body), None
        trace.cascade = "escalated"
        trace.draft_cost = prices.cost(spec.name, usage_of(body) or Usage(0, 0))
        return None, (spec, body)
    trace.cascade = "draft_failed"
    return None, None


def fall_back_on_draft(req: ChatCompletionRequest, trace: Trace, draft: Unconfident) -> dict[str, Any]:
    """The unconfident draft as the answer, when every model of the escalation chain failed and the policy is
    best_effort: an answer in hand beats a 502. Degraded (its model is below the tier the request needed), and its
    cost is the answer's own now, not a draft's on top of another answer. The record keeps `cascade: escalated`
    (the draft was judged not confident) and the chain's failures in `fallbacks`."""
    spec, body = draft
    trace.status, trace.error_type = 200, None
    trace.routed, trace.degraded, trace.draft_cost = spec, True, 0.0
    return _as_answer(req, body)


def _as_answer(req: ChatCompletionRequest, body: dict[str, Any]) -> dict[str, Any]:
    if not req.logprobs:  # asked for the judgement, not by the client
        for choice in body.get("choices") or []:
            if isinstance(choice, dict):
                choice.pop("logprobs", None)
    return body
