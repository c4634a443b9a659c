"""GET /healthz (the process answers) and GET /readyz (its parts are usable); HEAD of each for probes and uptime
monitors that send HEAD (`curl -I`): the same status, no body. FastAPI, unlike Starlette, answers HEAD on a GET route
with a 405."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from gateway.deps import Services

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.head("/healthz", include_in_schema=False)
async def healthz_head() -> Response:
    return Response()


@router.get("/readyz", responses={503: {"description": "Not ready: the ledger writer has stopped."}})
async def readyz(services: Services) -> JSONResponse:
    cache = services.pipeline.cache
    cache_ok = await cache.probe()
    checks: dict[str, Any] = {
        "classifier": "ok",
        "cache": "off"
        if cache.store is None
        else (f"{cache.store.name}: ok" if cache_ok else f"{cache.store.name}: degraded (bypassed)"),
        "ledger": services.ledger.status() if services.ledger.alive() else "writer stopped",
        "unavailable_models": sorted(services.pipeline.unavailable),
        # Passed over by routing for now; the gateway serves on with the others (README: cooldowns).
        "cooling_models": [c.model for c in services.pipeline.cooldowns.status()],
    }
    ready = services.ledger.alive()
    # A cache or ledger-database outage degrades (requests still succeed: uncached, or their records spooled
    # locally) but does not make the gateway unready.
    degraded = not cache_ok or services.ledger.status()["state"] != "up"
    status = "not_ready" if not ready else ("degraded" if degraded else "ready")
    return JSONResponse({"status": status, "checks": checks}, status_code=200 if ready else 503)


@router.head("/readyz", include_in_schema=False)
async def readyz_head(services: Services) -> Response:
    return Response(status_code=(await readyz(services)).status_code)
