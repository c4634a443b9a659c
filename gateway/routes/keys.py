"""GET /api/keys: each configured API key, its limits and what it has used of them, as the limits count it
(gateway/limits.py). Under /api/, so with keys on only an admin key reads it (gateway/auth.py). GET /v1/key: the
same for the calling key alone, open to every key."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request

from gateway.auth import checked_key, ledger_id
from gateway.deps import AppServices, Services, ledger_call
from gateway.errors import NotFound
from gateway.ledger.stats import key_usage
from gateway.limits import MINUTE_S
from gateway.openapi import error_docs
from router.durations import duration_s
from router.policy import ApiKey, Budget

router = APIRouter()
UNBUDGETED_WINDOW = "24h"  # what a key or model without a budget is shown to have spent over


def spend_window(budget: Budget | None, now: float) -> tuple[str, float]:
    """The window a key's or a model's spend is shown over (its budget's, else the last day) and when it starts."""
    per = budget.per if budget is not None else UNBUDGETED_WINDOW
    return per, now - duration_s(per)


def _entry(services: AppServices, k: ApiKey, now: float) -> dict[str, Any]:
    per, since = spend_window(k.budget, now)
    kid = ledger_id(k.sha256)
    used = key_usage(services.ledger.reader, kid, now - MINUTE_S, since)
    return {
        "name": k.name,
        "key_id": kid,
        "admin": k.admin,
        "policies": k.policies,
        "rpm": k.rpm,
        "requests_last_minute": used.requests,
        "tpm": k.tpm,
        "tokens_last_minute": used.tokens,
        "budget_usd": k.budget.usd if k.budget is not None else None,
        "spent_usd": used.spent_usd,
        "spent_per": per,
    }


@router.get("/api/keys")
async def keys(services: Services) -> dict[str, Any]:
    def work() -> list[dict[str, Any]]:
        services.ledger.flush()  # what was recorded before this request is counted
        now = time.time()
        return [_entry(services, k, now) for k in services.config.keys]

    return {"object": "list", "data": await ledger_call(work)}


@router.get("/v1/key", responses=error_docs({404: "The gateway has no API keys (code `no_keys`)."}))
async def own_key(request: Request, services: Services) -> dict[str, Any]:
    """The calling key's own entry, for any key (LiteLLM's /key/info): an app can watch its limits and budget
    without an admin key."""
    key = checked_key(request.scope)
    if key is None:
        raise NotFound("This gateway has no API keys: nothing limits or budgets its callers.", None, "no_keys")

    def work() -> dict[str, Any]:
        services.ledger.flush()
        return _entry(services, key, time.time())

    return {"object": "key", **(await ledger_call(work))}
