"""Choose the cheapest adequate model for one request, with the fallback chain and the reason for the choice."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from router.policy import ModelSpec, OnUnavailable, Policy, TiergateConfig
from router.pricing import PriceTable, Usage


@dataclass(frozen=True)
class Needs:
    """What the request itself demands of a model, read from its body."""

    tools: bool = False
    vision: bool = False
    json_mode: bool = False
    context_tokens: int = 0
    expected_output_tokens: int = 256


@dataclass(frozen=True)
class Decision:
    """The chain to try in order (first = chosen), the minimum tier, and a human-readable reason."""

    chain: tuple[ModelSpec, ...]
    min_tier: int
    degraded: bool
    reason: str
    skipped: dict[str, str] = field(default_factory=dict)


class NotAllowed(Exception):
    """The policy forbids this request's model."""


class NoModelAvailable(Exception):
    """No model may serve this request under the policy; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def unmet_need(model: ModelSpec, needs: Needs) -> str | None:
    """The first capability the request needs that the model lacks, or None."""
    caps = model.capabilities
    if needs.tools and not caps.tools:
        return "no tool calling"
    if needs.vision and not caps.vision:
        return "no vision"
    if needs.json_mode and not caps.json_mode:
        return "no JSON mode"
    if needs.context_tokens + needs.expected_output_tokens > caps.context_window:
        return f"context window {caps.context_window} < {needs.context_tokens + needs.expected_output_tokens} tokens"
    return None


def select(
    config: TiergateConfig,
    policy: Policy,
    score: float,
    needs: Needs,
    prices: PriceTable,
    unavailable: Collection[str],
) -> Decision:
    """Route on the score: adequate models cheapest first; with best_effort, the strongest weaker ones if none is up.

    Ties in price go to the lower tier, then to the name, so the same inputs always give the same chain.
    """
    min_tier = policy.min_tier(score)
    expected = Usage(needs.context_tokens, needs.expected_output_tokens)
    skipped: dict[str, str] = {}
    usable: list[ModelSpec] = []
    allowed = set(policy.allowed_models) if policy.allowed_models is not None else None
    for m in config.models:
        if allowed is not None and m.name not in allowed:
            skipped[m.name] = "not allowed by policy"
        elif m.name in unavailable:
            skipped[m.name] = "unavailable"
        elif (why := unmet_need(m, needs)) is not None:
            skipped[m.name] = why
        else:
            usable.append(m)
    adequate = sorted(
        (m for m in usable if m.tier >= min_tier),
        key=lambda m: (prices.cost(m.name, expected), m.tier, m.name),
    )
    if adequate:
        first = adequate[0]
        reason = (
            f"score {score:.3f} needs tier >= {min_tier}; {first.name} (tier {first.tier}) is the cheapest adequate"
        )
        return Decision(tuple(adequate), min_tier, False, reason, skipped)
    if policy.on_unavailable is OnUnavailable.reject or not usable:
        raise NoModelAvailable(
            f"no available model at tier >= {min_tier} for this request"
            + (f" (skipped: {', '.join(f'{k}: {v}' for k, v in sorted(skipped.items()))})" if skipped else "")
        )
    weaker = sorted(usable, key=lambda m: (-m.tier, prices.cost(m.name, expected), m.name))
    reason = f"score {score:.3f} needs tier >= {min_tier}; none available, best effort with {weaker[0].name}"
    return Decision(tuple(weaker), min_tier, True, reason, skipped)


def direct(config: TiergateConfig, policy: Policy, name: str, unavailable: Collection[str]) -> Decision:
    """A request naming a concrete model: it goes there alone if the policy allows direct use."""
    model = config.model(name)
    if model is None:
        raise KeyError(name)
    if not policy.allow_direct or (policy.allowed_models is not None and name not in policy.allowed_models):
        raise NotAllowed(f"the policy does not allow requests for {name!r} directly")
    if name in unavailable:
        raise NoModelAvailable(f"model {name!r} is unavailable (its API key is not set or it is marked down)")
    return Decision((model,), model.tier, False, f"requested directly: {name}")
