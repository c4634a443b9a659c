"""The ledger's requests one by one, newest first: what GET /api/requests and the dashboard's "Recent requests"
show. Prompts stay out (they are kept only for training export, when a policy records them)."""

from __future__ import annotations

import json
from typing import Any

from gateway.ledger.backends import Backend
from gateway.ledger.stats import StatsQuery

COLUMNS = [
    "id",
    "ts",
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
    "cascade",
    "route",
]
MAX_LIMIT = 1000


def recent(
    db: Backend,
    q: StatsQuery,
    model: str | None = None,
    errors_only: bool = False,
    limit: int = 100,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    """Up to `limit` records matching the filters, newest first (by the time each request arrived; ties by id);
    `before_id` pages back from a record (the last page's last id)."""
    where, params = q.where()
    if model:
        where += " AND routed_model = ?"
        params.append(model)
    if errors_only:
        where += " AND status >= 400"
    if before_id is not None:
        found = db.query("SELECT ts FROM requests WHERE id = ?", [before_id])
        if not found:
            return []
        (ts,) = found[0]
        where += " AND (ts < ? OR (ts = ? AND id < ?))"
        params += [ts, ts, before_id]
    sql = f"SELECT {', '.join(COLUMNS)} FROM requests WHERE {where} ORDER BY ts DESC, id DESC LIMIT ?"
    rows = db.query(sql, [*params, min(max(limit, 1), MAX_LIMIT)])
    out = []
    for row in rows:
        r = dict(zip(COLUMNS, row, strict=True))
        r["fallbacks"] = json.loads(r["fallbacks"]) if r["fallbacks"] else []
        r["stream"], r["degraded"] = bool(r["stream"]), bool(r["degraded"])
        out.append(with_lists(r))
    return out


def with_lists(entry: dict[str, Any]) -> dict[str, Any]:
    """`tags` and `private_data` as lists: the ledger stores them as ",a,b," for its LIKE filters."""
    for listed in ("tags", "private_data"):
        entry[listed] = [x for x in (entry[listed] or "").split(",") if x]
    return entry
