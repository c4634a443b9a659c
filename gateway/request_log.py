"""One log line per finished request (TIERGATE_REQUEST_LOG=true), for log pipelines that want the ledger's events
as they happen: logger `tiergate.requests`, level INFO. As text, a readable line; as JSON (TIERGATE_LOG_FORMAT=json),
the same line plus a "request" object with the record's fields (prompts never). Off by default: a line per request
costs CPU on the hot path and repeats what the ledger keeps."""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from gateway.ledger import LedgerRecord
from gateway.ledger.request_log import COLUMNS, with_lists

log = logging.getLogger("tiergate.requests")
# The request log's columns but for the database's own id, and `ts` and `cascade`, which the line does not need.
FIELDS = tuple(c for c in COLUMNS if c not in ("id", "ts", "cascade"))


def fields(rec: LedgerRecord) -> dict[str, Any]:
    d = asdict(rec)
    return with_lists({k: d[k] for k in FIELDS})


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
