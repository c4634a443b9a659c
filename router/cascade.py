"""Cascade mode's decisions, without I/O: which models draft and escalate, and how confident a draft answer is."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from router.policy import ModelSpec, Policy, TiergateConfig
from router.pricing import PriceTable
from router.select import NO_STEERING, Decision, Needs, NoModelAvailable, Steering, select

LOGPROB_FLOOR = -100.0


@dataclass(frozen=True)
class CascadePlan:
    """Draft with `draft` (one tier: the cheapest available, in order); keep the draft if its confidence reaches
    `min_confidence`, else escalate to `escalate.chain`."""

    draft: tuple[ModelSpec, ...]
    escalate: Decision
    min_confidence: float


def _above(d: Decision, tier: int) -> Decision | None:
    chain = tuple(m for m in d.chain if m.tier > tier)
    weaker = tuple(m for m in d.weaker if m.tier > tier)  # a weaker model than the draft's is no escalation
    return Decision(chain, max(d.min_tier, tier + 1), d.degraded, d.reason, d.skipped, weaker) if chain else None


def plan(
    config: TiergateConfig,
    policy: Policy,
    score: float,
    needs: Needs,
    prices: PriceTable,
    unavailable: Collection[str],
    decision: Decision,
    passed_over: Mapping[str, str] | None = None,
    steering: Steering = NO_STEERING,
) -> CascadePlan | None:
    """The cascade for a routed request, or None when the policy has none, the prompt scores too high, or there
    is no cheaper tier to draft with / no stronger one to escalate to."""
    c = policy.cascade
    if c is None or score >= c.below_score:
        return None
    over = passed_over or {}
    try:
        # A model passed over for now drafts only when nothing else could: select's last resort, as for the answer.
        cheapest = select(config, policy, 0.0, needs, prices, unavailable, over, steering)
    except NoModelAvailable:
        return None
    tier = cheapest.chain[0].tier
    if decision.chain[0].tier > tier:
        up = _above(decision, tier)
    elif tier < len(policy.thresholds):
        # The thresholds chose the cheapest tier: escalate to the next one up, as a score at its threshold would.
        try:
            up = _above(
                select(config, policy, policy.thresholds[tier], needs, prices, unavailable, over, steering), tier
            )
        except NoModelAvailable:
            up = None
    else:
        up = None
    if up is None:
        return None
    return CascadePlan(tuple(m for m in cheapest.chain if m.tier == tier), up, c.min_confidence)


def answer_logprobs(body: Mapping[str, Any]) -> list[float]:
    """The first choice's token log-probabilities from an OpenAI-style chat completion (empty if absent)."""
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        return []
    lp = choices[0].get("logprobs")
    content = lp.get("content") if isinstance(lp, Mapping) else None
    if not isinstance(content, list):
        return []
    out = []
    for tok in content:
        v = tok.get("logprob") if isinstance(tok, Mapping) else None
        if isinstance(v, int | float) and not isinstance(v, bool) and not math.isnan(v):
            out.append(max(float(v), LOGPROB_FLOOR))  # a -inf token must pull confidence down, not vanish
    return out


def confidence(logprobs: list[float]) -> float | None:
    """Geometric mean of the tokens' probabilities (exp of the mean log-probability); None without tokens."""
    return math.exp(sum(logprobs) / len(logprobs)) if logprobs else None
