"""One log line per finished request (TIERGATE_REQUEST_LOG=true), for log pipelines that want the ledger's events
as they happen: logger `tiergate.requests`, level INFO. As text, a readable line; as JSON (TIERGATE_LOG_FORMAT=json),
the same line plus a "request" object with the record's fields (prompts never). Off by default: a line per request
costs CPU on the hot path and repeats what the ledger keeps."""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from gateway.ledger import LedgerRecord

log = logging.getLogger("tiergate.requests")
FIELDS = (
    "request_id",
    "endpoint",
    "policy",
    "requested_model",
    "routed_model",
    "tier",
    "score",
    "status",
    "error_type",
    "cache",
    "stream",
    "degraded",
    "fallbacks",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "baseline_cost_usd",
    "latency_ms",
    "ttft_ms",
    "key_id",
    "end_user",
    "tags",
    "private_data",
)


def fields(rec: LedgerRecord) -> dict[str, Any]:
    d = asdict(rec)
    out = {k: d[k] for k in FIELDS}
    for listed in ("tags", "private_data"):  # the ledger's ",a,b," as a list
        out[listed] = [x for x in (out[listed] or "").split(",") if x]
    return out


class RequestLog:
    """A recorder sink (gateway/recorder.py)."""

    def record(self, rec: LedgerRecord) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        model = rec.routed_model or "-"
        log.info(
            "%s %s %s %s -> %s %d cache=%s cost=$%.8f latency=%.1fms",
            rec.request_id,
            rec.endpoint,
            rec.policy or "-",
            rec.requested_model or "-",
            model,
            rec.status,
            rec.cache,
            rec.cost_usd,
            rec.latency_ms,
            extra={"request": fields(rec)},
        )
