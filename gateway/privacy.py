"""Private data in a request (router/private.py) under a policy's `private_data`: what was found goes on the trace
(its header and ledger column), and what may not go anywhere, or not where it was sent, is refused with a 400."""

from __future__ import annotations

from typing import Any

from gateway.errors import InvalidRequest
from gateway.trace import Trace
from router import private
from router.policy import Policy, TiergateConfig

PRIVATE = "private_data"  # the error code of a request refused for the private data in it


def screen(
    config: TiergateConfig, policy: Policy, trace: Trace, concrete: str | None, messages: list[dict[str, Any]]
) -> None:
    """Note on the trace the kinds of private data the policy looks for and the request holds; refuse what the
    policy's `private_data` says may not go anywhere, or not where it was sent. Routing keeps the rest on local
    models (gateway/pipeline.py: route). The message names the kinds found, never what matched."""
    assert policy.private_data is not None
    found = private.find(private.message_text(messages), policy.private_data.detect)
    if not found:
        return
    trace.private_data = found
    what = f"The request holds what looks like private data ({', '.join(trace.private_data)})"
    if policy.private_data.action == "reject":
        raise trace.fail(InvalidRequest(f"{what}; the policy '{trace.policy}' accepts none.", "messages", PRIVATE))
    named = config.model(concrete) if concrete is not None else None
    if named is not None and not named.local:
        raise trace.fail(
            InvalidRequest(
                f"{what}; the policy '{trace.policy}' keeps it on local models, and '{named.name}' is hosted.",
                "model",
                PRIVATE,
            )
        )
    allowed = policy.allowed_models
    if not any(m.local and (allowed is None or m.name in allowed) for m in config.models):
        raise trace.fail(
            InvalidRequest(
                f"{what}; the policy '{trace.policy}' keeps it on local models, and it allows none.",
                "messages",
                PRIVATE,
            )
        )
