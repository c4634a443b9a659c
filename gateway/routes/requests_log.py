"""GET /api/requests: the ledger's requests one by one, newest first, with the stats' filters (gateway/routes/
stats.py: since / from / to, policy, key, user, tag) and `model`, `errors=true`, `limit` (1-1000, default 100) and
`before` (page back from an id: the `next_before` of the last page). Under /api/, so with keys on only an admin key
reads it (gateway/auth.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from gateway.deps import Services, ledger_call
from gateway.ledger.request_log import MAX_LIMIT, recent
from gateway.routes.stats import Filters

router = APIRouter()


@router.get("/api/requests")
async def requests_log(
    services: Services,
    q: Filters,
    model: str | None = None,
    errors: bool = False,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,  # ids are 64-bit in both ledger databases
) -> dict[str, Any]:
    def work() -> list[dict[str, Any]]:
        services.ledger.flush()  # what was recorded before this request is listed
        return recent(services.ledger.reader, q, model or None, errors, limit, before)

    rows = await ledger_call(work)
    return {"object": "list", "data": rows, "next_before": rows[-1]["id"] if len(rows) == limit else None}
