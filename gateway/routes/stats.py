"""GET /api/stats: per policy and model, requests, cache hit rate, cost, and what routing and the cache saved."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Query

from gateway.deps import Services

router = APIRouter()


@router.get("/api/stats")
async def stats(services: Services, since_hours: float = Query(default=24.0, gt=0, le=24 * 366)) -> dict[str, Any]:
    rows = services.ledger.per_model(time.time() - since_hours * 3600)
    return {"since_hours": since_hours, "by_policy_and_model": rows}
