"""What a request used: the upstream's own usage report, or, when it sent none, the gateway's estimate.

An upstream may report no usage: a stream cut short by the client or the upstream, or an OpenAI-compatible server
that never sends it. A provider bills what it generated all the same, so the ledger records an estimate (flagged
`usage_estimated`) rather than a cost of 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from gateway.protocol import ChatCompletionRequest
from router.pricing import Usage
from router.tokens import estimate_tokens


def usage_of(body: Mapping[str, Any]) -> Usage | None:
    """The usage an answer or a stream chunk reports, if any, with the prompt tokens read from the provider's
    prompt cache: OpenAI's `prompt_tokens_details.cached_tokens`, or `cache_read_input_tokens` as litellm reports
    Anthropic's."""
    u = body.get("usage")
    if not isinstance(u, dict):
        return None
    details = u.get("prompt_tokens_details")
    cached = (details.get("cached_tokens") if isinstance(details, dict) else None) or u.get("cache_read_input_tokens")
    return Usage(
        int(u.get("prompt_tokens") or 0),
        int(u.get("completion_tokens") or 0),
        cached if isinstance(cached, int) and not isinstance(cached, bool) and cached > 0 else 0,
    )


def content_tokens(parts: Iterable[Any]) -> float:
    """Estimated tokens (router/tokens.py) of the text in messages or stream deltas: content and tool-call
    arguments. Tolerant of any shape: it reads what upstreams sent."""
    n = 0.0
    for p in parts:
        if not isinstance(p, Mapping):
            continue
        content = p.get("content")
        n += estimate_tokens(content) if isinstance(content, str) else 0
        calls = p.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            fn = call.get("function") if isinstance(call, Mapping) else None
            n += estimate_tokens(str(fn.get("arguments") or "")) if isinstance(fn, Mapping) else 0
    return n


def estimate_usage(req: ChatCompletionRequest, answer_tokens: float, answer_deltas: int = 0) -> Usage:
    """The prompt as the router estimates it; the answer at the larger of its estimate from its text and its count
    of streamed deltas (streams send about one token a delta; a server that packs several into one is counted by
    its text)."""
    return Usage(req.needs().context_tokens, max(answer_deltas, math.ceil(answer_tokens)))


def counts_one_choice(body: Mapping[str, Any]) -> bool:
    """Whether the usage beside this answer (or stream chunk) counts one choice's tokens however many there are.
    llama.cpp's server does, for `n` > 1 (measured: three answers of 20 tokens each, `completion_tokens: 20`), and
    it is the only server here that adds its `timings` object to an answer."""
    return isinstance(body.get("timings"), Mapping)


def every_choice(req: ChatCompletionRequest, reported: Usage, choices: Iterable[tuple[Any, float]]) -> Usage:
    """The completion tokens of all the answers of one request whose server counted only one of them
    (`counts_one_choice`): each answer cut by its length limit is that limit, exactly; any other its estimate from
    its text. Never less than the server counted."""
    limit = req.max_completion_tokens or req.max_tokens
    total = sum(limit if reason == "length" and limit else math.ceil(tokens) for reason, tokens in choices)
    return Usage(reported.prompt_tokens, max(reported.completion_tokens, total), reported.cached_tokens)


def restated(reported: Mapping[str, Any], usage: Usage) -> dict[str, Any]:
    """A server's usage object saying `usage`'s completion tokens (and their total with the prompt's), its other
    fields kept: what a client is told where the server counted one answer of several."""
    total = usage.prompt_tokens + usage.completion_tokens
    return {**reported, "completion_tokens": usage.completion_tokens, "total_tokens": total}


def answer_usage(req: ChatCompletionRequest, body: dict[str, Any]) -> tuple[Usage, bool]:
    """What a whole answer used, and whether that is an estimate: the upstream's report; the answers' estimate when
    it sent none; every answer counted when its server counted one of several (`counts_one_choice`). In that last
    case the body's own `usage` is restated to match, as OpenAI's counts every answer: the client reads the tokens
    it is billed for, not a fraction of them."""
    choices = [c for c in body.get("choices") or () if isinstance(c, Mapping)]
    if (usage := usage_of(body)) is None:
        return estimate_usage(req, content_tokens(c.get("message") for c in choices)), True
    if len(choices) > 1 and counts_one_choice(body):
        counted = [(c.get("finish_reason"), content_tokens([c.get("message")])) for c in choices]
        usage = every_choice(req, usage, counted)
        body["usage"] = restated(body["usage"], usage)
        return usage, True
    return usage, False
