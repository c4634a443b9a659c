"""POST /v1/feedback: a client's judgement of an answer, kept as a label for retraining (gateway/ledger/feedback.py).

201 means the judgement is stored; 503 means it is not (the ledger database is down: retry later). The request id
need not be in the ledger yet (records are written in batches); the export joins them later.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from gateway.deps import Services
from gateway.errors import Unavailable
from gateway.ledger import LedgerUnavailable
from gateway.pipeline import key_id
from gateway.protocol import FeedbackRequest

router = APIRouter()


@router.post("/v1/feedback", status_code=201)
async def feedback(body: FeedbackRequest, request: Request, services: Services) -> dict[str, Any]:
    key = key_id({"authorization": request.headers.get("authorization", "")})
    try:
        fid = await run_in_threadpool(services.ledger.add_feedback, body.request_id, body.score, key)
    except LedgerUnavailable as e:
        raise Unavailable(f"The ledger database is unavailable: {e}", None, "ledger_unavailable") from None
    return {"object": "feedback", "id": fid, "request_id": body.request_id, "score": body.score}
