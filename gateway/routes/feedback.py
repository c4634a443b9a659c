"""POST /v1/feedback: a client's judgement of an answer, kept as a label for retraining (gateway/ledger/feedback.py).

201 means the judgement is stored; 503 means it is not (the ledger database is down: retry later). The request id
need not be in the ledger yet (records are written in batches); the export joins them later. It must be one the
gateway could have given (gateway/request_ids.py), else a 400: no request could ever join it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from gateway.auth import checked_key
from gateway.deps import Services, ledger_call
from gateway.openapi import error_docs
from gateway.protocol import FeedbackRequest
from gateway.trace import key_id

router = APIRouter()


@router.post(
    "/v1/feedback", status_code=201, responses=error_docs({503: "The ledger database is down: not stored, retry."})
)
async def feedback(body: FeedbackRequest, request: Request, services: Services) -> dict[str, Any]:
    key = key_id(request.headers, checked_key(request.scope))
    fid = await ledger_call(services.ledger.add_feedback, body.request_id, body.score, key)
    return {"object": "feedback", "id": fid, "request_id": body.request_id, "score": body.score}
