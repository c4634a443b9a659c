"""GET /api/models: each chat model's state for operators: whether routing may use it now and why not (its key
unset, cooling down after failures, its budget spent, full), its servers, its calls in flight, and its spend against
its budget, counted from the ledger (so the same whichever worker answers). Cooldowns and calls in flight are the
answering worker's own (gateway/cooldown.py, gateway/inflight.py).
Under /api/, so with keys on only an admin key reads it (gateway/auth.py)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter

from gateway.deps import Services, ledger_call
from gateway.ledger.stats import model_spend
from gateway.routes.keys import spend_window

router = APIRouter()


@router.get("/api/models")
async def model_status(services: Services) -> dict[str, Any]:
    pipeline = services.pipeline
    cooling = {c.model: c for c in pipeline.cooldowns.status()}
    load = pipeline.deployments.inflight.load()

    def work() -> list[dict[str, Any]]:
        services.ledger.flush()  # what was recorded before this request is counted
        now = time.time()
        out = []
        for m in services.config.models:
            per, since = spend_window(m.budget, now)
            spent = model_spend(services.ledger.reader, m.name, since)
            servers = pipeline.deployments.keys(m.name)
            cool = [cooling[k] for k in servers if k in cooling]
            if m.name in pipeline.unavailable:
                status = "no key"
            elif m.budget is not None and spent >= m.budget.usd:
                status = "budget spent"
            elif servers and len(cool) == len(servers):
                status = "cooling down"
            elif servers and all(pipeline.deployments.inflight.full(k) for k in servers):
                status = "full"
            else:
                status = "ok"
            out.append(
                {
                    "name": m.name,
                    "tier": m.tier,
                    "local": m.local,
                    "status": status,
                    "servers": len(servers),
                    "servers_cooling": [
                        {"server": c.model, "until": c.until_epoch, "last_error": c.reason} for c in cool
                    ],
                    # Against `in_flight`, which sums the servers: their caps summed (a deployment may set its own).
                    "max_concurrency": pipeline.deployments.capacity(m.name),
                    "when_full": m.when_full,
                    "in_flight": sum(load[k].in_flight for k in servers if k in load),
                    "waiting": sum(load[k].waiting for k in servers if k in load),
                    "budget_usd": m.budget.usd if m.budget is not None else None,
                    "spent_usd": spent,
                    "spent_per": per,
                }
            )
        return out

    return {"object": "list", "data": await ledger_call(work)}
