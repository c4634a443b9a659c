"""GET /healthz (the process answers) and GET /readyz (its parts are usable)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from gateway.deps import Services

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(services: Services) -> JSONResponse:
    checks: dict[str, Any] = {
        "classifier": "ok",
        "ledger": "ok" if services.ledger.alive() else "writer stopped",
        "unavailable_models": sorted(services.pipeline.unavailable),
    }
    ready = checks["ledger"] == "ok"
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks}, status_code=200 if ready else 503
    )
