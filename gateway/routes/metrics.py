"""GET /metrics: Prometheus text format (requests, cost, tokens, cache hits, latency histograms per model/tier)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, Response

from gateway.deps import Services

router = APIRouter()


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(services: Services) -> Response:
    return Response(services.metrics.render(), media_type=services.metrics.content_type)
