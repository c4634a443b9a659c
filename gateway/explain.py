"""What routing would do with a chat request now (`POST /api/route`), through the pipeline's own steps, calling no
model and recording nothing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.pipeline import ChatPipeline, call_args
from gateway.protocol import ChatCompletionRequest
from gateway.trace import start_trace
from router.policy import ApiKey, ModelSpec
from router.pricing import Usage


async def explain(
    pipeline: ChatPipeline,
    req: ChatCompletionRequest,
    api_key: ApiKey | None = None,
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The policy, the score, the chain and best effort's weaker models with each one's estimated cost (tokens
    estimated as the router does), the reason and what was passed over. Raises what the request itself would get
    (404, 403, 400, 429, 503)."""
    trace = start_trace(req, "explain", False, None, api_key, "route")
    policy, decision, _ = pipeline.begin(req, trace, api_key, headers)
    if decision is not None and pipeline.budgets.active:
        await pipeline.within_budget(trace, decision)
    if decision is None:
        decision, _ = await pipeline.route(req, trace, policy, call_args(req)[0])
    needs = req.needs()
    expected = Usage(needs.context_tokens, needs.expected_output_tokens)

    def priced(name: str) -> float:
        return round(pipeline.prices.cost(name, expected), 10)

    def listed(models: tuple[ModelSpec, ...]) -> list[dict[str, Any]]:
        return [{"model": m.name, "tier": m.tier, "estimated_cost_usd": priced(m.name)} for m in models]

    return {
        "policy": trace.policy,
        "score": trace.score,
        "route": None if trace.route is None else {"name": trace.route.name, "similarity": trace.route.similarity},
        "min_tier": decision.min_tier,
        "degraded": decision.degraded,
        "reason": decision.reason,
        "estimated_tokens": {"prompt": expected.prompt_tokens, "completion": expected.completion_tokens},
        "chain": listed(decision.chain),
        # Best effort's models below the minimum tier, tried (answers degraded) when every one in the chain fails.
        "weaker": listed(decision.weaker),
        "skipped": decision.skipped,
        "baseline": {"model": policy.baseline_model, "estimated_cost_usd": priced(policy.baseline_model)},
    }
