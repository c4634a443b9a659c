"""Choose the cheapest adequate model for one request, with the fallback chain and the reason for the choice."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from router.policy import ModelSpec, OnUnavailable, Policy, TiergateConfig
from router.pricing import PriceTable, Usage
from router.routes import RouteMatch

_NONE: Mapping[str, str] = MappingProxyType({})  # nothing passed over (immutable, so safe as a default)


@dataclass(frozen=True)
class Needs:
    """What the request itself demands of a model, read from its body."""

    tools: bool = False
    # A tool call is required (`tool_choice: "required"` or a named function): a server without tool calling answers
    # in text instead, without a word, so even a client that names such a model is told.
    forced_call: bool = False
    vision: bool = False
    audio_input: bool = False
    audio_output: bool = False
    files: bool = False
    json_mode: bool = False
    context_tokens: int = 0
    expected_output_tokens: int = 256
    choices: int = 1  # answers asked for (`n`)


NO_NEEDS = Needs()


@dataclass(frozen=True)
class Steering:
    """What the request's sender asks of routing beyond its policy: a tier at least this high (the app knows the task
    is hard), and at most this estimated cost (the app's own price ceiling for this call)."""

    min_tier: int = 0
    max_cost_usd: float | None = None


NO_STEERING = Steering()


@dataclass(frozen=True)
class Decision:
    """The chain to try in order (first = chosen), the minimum tier, and a human-readable reason. Under best_effort,
    `weaker` follows the chain when every model in it fails its call: the available models below the minimum tier,
    strongest first (an answer from one is degraded)."""

    chain: tuple[ModelSpec, ...]
    min_tier: int
    degraded: bool
    reason: str
    skipped: dict[str, str] = field(default_factory=dict)
    weaker: tuple[ModelSpec, ...] = ()


class NotAllowed(Exception):
    """The policy forbids this request's model."""


class NoModelAvailable(Exception):
    """No model may serve this request under the policy; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unsatisfiable(Exception):
    """Every model the policy allows lacks something the request needs: no wait or retry can serve it, so it is the
    client's to change (the gateway answers 400), unlike NoModelAvailable, where a model that would do is down."""

    def __init__(self, reason: str, need: str | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.need = need  # the one kind of need every model fails ("tools", "context", ...); None if they differ


@dataclass(frozen=True)
class Unmet:
    """A capability the request needs that a model lacks: its kind (a field of Needs, or context) and a text."""

    kind: str
    text: str


def unmet_content(model: ModelSpec, needs: Needs) -> Unmet | None:
    """The first kind of content the request holds or asks for (images, audio, files, an answer in audio, a required
    tool call) that the model cannot take or give, or None."""
    caps = model.capabilities
    if needs.forced_call and not caps.tools:
        return Unmet("forced_call", "no tool calling, and `tool_choice` requires a call")
    if needs.vision and not caps.vision:
        return Unmet("vision", "no vision")
    if needs.audio_input and not caps.audio_input:
        return Unmet("audio_input", "no audio input")
    if needs.files and not caps.files:
        return Unmet("files", "no file input")
    if needs.audio_output and not caps.audio_output:
        return Unmet("audio_output", "no audio output")
    return None


def unmet_need(model: ModelSpec, needs: Needs) -> Unmet | None:
    """The first capability the request needs that the model lacks, or None."""
    caps = model.capabilities
    if needs.tools and not caps.tools:
        return Unmet("tools", "no tool calling")
    if (content := unmet_content(model, needs)) is not None:
        return content
    if needs.json_mode and not caps.json_mode:
        return Unmet("json_mode", "no JSON mode")
    if caps.max_choices is not None and needs.choices > caps.max_choices:
        return Unmet("choices", f"at most {caps.max_choices} choices (n) per request")
    wanted = needs.context_tokens + needs.expected_output_tokens
    if wanted > caps.context_window:
        return Unmet(
            "context",
            f"context window {caps.context_window} < {wanted} tokens "
            f"(~{needs.context_tokens} in the messages, {needs.expected_output_tokens} for the answer)",
        )
    return None


def _never_servable(candidates: list[ModelSpec], needs: Needs) -> None:
    """Raise Unsatisfiable when no candidate, available or not, has what the request needs."""
    lacks = [(m.name, unmet_need(m, needs)) for m in candidates]
    if not lacks or any(u is None for _, u in lacks):
        return
    kinds = {u.kind for _, u in lacks if u is not None}
    raise Unsatisfiable(
        "no model this policy allows can serve this request ("
        + ", ".join(f"{name}: {u.text}" for name, u in sorted(lacks) if u is not None)
        + ")",
        kinds.pop() if len(kinds) == 1 else None,
    )


def select(
    config: TiergateConfig,
    policy: Policy,
    score: float,
    needs: Needs,
    prices: PriceTable,
    unavailable: Collection[str],
    passed_over: Mapping[str, str] = _NONE,
    steering: Steering = NO_STEERING,
    route: RouteMatch | None = None,
) -> Decision:
    """Route on the score (or on the policy's `route` the prompt matched, whose tier then stands in for the
    score's): adequate models cheapest first; with best_effort, the strongest weaker ones if none is up.
    Raises Unsatisfiable if no allowed model could serve the request even when up, NoModelAvailable if none is up.

    Models `passed_over` for now (name: why; cooling down after repeated failures, full with overflow on) are
    passed over like unavailable ones, unless that leaves nothing to try: then they are tried all the same, since
    a refusal is certain and their failure (or wait) is not.
    Ties in price go to the lower tier, then to the name, so the same inputs always give the same chain.
    """
    if passed_over:
        try:
            return _select(config, policy, score, needs, prices, unavailable, passed_over, steering, route)
        except NoModelAvailable:
            d = _select(config, policy, score, needs, prices, unavailable, _NONE, steering, route)
            why = " or ".join(sorted(set(passed_over.values())))
            return replace(d, reason=f"{d.reason} (every other choice is passed over for now too: {why})")
    return _select(config, policy, score, needs, prices, unavailable, _NONE, steering, route)


def _select(
    config: TiergateConfig,
    policy: Policy,
    score: float,
    needs: Needs,
    prices: PriceTable,
    unavailable: Collection[str],
    passed_over: Mapping[str, str],
    steering: Steering = NO_STEERING,
    route: RouteMatch | None = None,
) -> Decision:
    own = policy.min_tier(score) if route is None else route.tier
    min_tier = max(own, steering.min_tier)
    expected = Usage(needs.context_tokens, needs.expected_output_tokens)
    cap = steering.max_cost_usd
    skipped: dict[str, str] = {}
    usable: list[ModelSpec] = []
    allowed = set(policy.allowed_models) if policy.allowed_models is not None else None
    _never_servable([m for m in config.models if allowed is None or m.name in allowed], needs)
    for m in config.models:
        if allowed is not None and m.name not in allowed:
            skipped[m.name] = "not allowed by policy"
        elif m.name in unavailable:
            skipped[m.name] = "unavailable"
        elif m.name in passed_over:
            skipped[m.name] = passed_over[m.name]
        elif (why := unmet_need(m, needs)) is not None:
            skipped[m.name] = why.text
        elif cap is not None and (cost := prices.cost(m.name, expected)) > cap:
            skipped[m.name] = f"estimated ${cost:.6g}, over the request's max cost ${cap:g}"
        else:
            usable.append(m)
    adequate = sorted(
        (m for m in usable if m.tier >= min_tier),
        key=lambda m: (prices.cost(m.name, expected), m.tier, m.name),
    )
    best_effort = policy.on_unavailable is OnUnavailable.best_effort
    weaker = sorted(
        (m for m in usable if m.tier < min_tier), key=lambda m: (-m.tier, prices.cost(m.name, expected), m.name)
    )
    if adequate:
        first = adequate[0]
        chosen = f"{first.name} (tier {first.tier}) is the cheapest adequate"
        reason = f"{_needs(own, score, steering, route)} tier >= {min_tier}; {chosen}"
        # Best effort holds when the adequate models fail their calls too, not only when none is up: without the
        # weaker ones after them, a model failing before its cooldown began cost its first requests a 502, where
        # those after the cooldown began were answered (degraded) by a weaker model.
        return Decision(tuple(adequate), min_tier, False, reason, skipped, tuple(weaker) if best_effort else ())
    if not best_effort or not weaker:
        raise NoModelAvailable(
            f"no available model at tier >= {min_tier} for this request"
            + (f" (skipped: {', '.join(f'{k}: {v}' for k, v in sorted(skipped.items()))})" if skipped else "")
        )
    reason = (
        f"{_needs(own, score, steering, route)} tier >= {min_tier}; none available, best effort with {weaker[0].name}"
    )
    return Decision(tuple(weaker), min_tier, True, reason, skipped)


def _needs(own: int, score: float, steering: Steering, route: RouteMatch | None) -> str:
    what = f"score {score:.3f}" if route is None else f"route '{route.name}' (similarity {route.similarity:.3f})"
    if steering.min_tier > own:
        return f"{what} and the request's min tier need"
    return f"{what} needs"


def direct(
    config: TiergateConfig, policy: Policy, name: str, unavailable: Collection[str], content: Needs = NO_NEEDS
) -> Decision:
    """A request naming a concrete model: it goes there alone if the policy allows direct use.

    What the model lacks is not checked, as the client chose it, except the kinds of content in `content`
    (`unmet_content`: images, audio, files, an answer in audio, a required tool call). A server that cannot take them
    fails such a request (llama-server answers images and audio with a 500, which would count against the model's
    health) or drops them without a word (an answer in text where audio, or a tool call, was required), so it is
    refused as a routed one would be."""
    model = config.model(name)
    if model is None:
        raise KeyError(name)
    if not policy.allow_direct or (policy.allowed_models is not None and name not in policy.allowed_models):
        raise NotAllowed(f"the policy does not allow requests for {name!r} directly")
    if (lack := unmet_content(model, content)) is not None:
        raise Unsatisfiable(f"the model {name!r} cannot serve this request ({lack.text})", lack.kind)
    if name in unavailable:
        raise NoModelAvailable(f"model {name!r} is unavailable (its API key is not set or it is marked down)")
    return Decision((model,), model.tier, False, f"requested directly: {name}")
