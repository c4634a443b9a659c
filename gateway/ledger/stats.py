"""What the ledger says, summed: per-model table, tier mix, spend and savings over time, for a time range, policy
and key. One implementation behind `GET /api/stats`, its CSV export, the dashboard and `tiergate report`.

Definitions: `saved_usd` = baseline cost - cost (what routing and the cache saved against sending every request
to the policy's baseline model); `saved_by_cache_usd` is the part from cache hits. Latency percentiles are over
answered requests (status < 400), nearest-rank, so a burst of instant 4xx rejections does not flatter them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Literal

from gateway.ledger.backends import Backend
from gateway.tags import like

BUCKETS: dict[str, int] = {"hour": 3600, "day": 86400}
NO_MODEL = "(none)"  # requests refused before a model was chosen


@dataclass(frozen=True)
class StatsQuery:
    since: float
    until: float
    policy: str | None = None
    key_id: str | None = None
    bucket: Literal["hour", "day"] = "hour"
    end_user: str | None = None
    tag: str | None = None

    def where(self) -> tuple[str, list[Any]]:
        sql: list[str] = ["ts >= ?", "ts < ?"]
        params: list[Any] = [self.since, self.until]
        if self.policy:
            sql.append("policy = ?")
            params.append(self.policy)
        if self.key_id:
            sql.append("key_id = ?")
            params.append(self.key_id)
        if self.end_user:
            sql.append("end_user = ?")
            params.append(self.end_user)
        if self.tag:
            sql.append("tags LIKE ? ESCAPE '\\'")
            params.append(like(self.tag))
        return " AND ".join(sql), params


@dataclass(frozen=True)
class Usage:
    """One key's use as the ledger has it: requests since a time (but those a limit refused), the earliest of them and
    their tokens, and its spend since another time (gateway/limits.py)."""

    requests: int = 0
    first_ts: float | None = None
    spent_usd: float = 0.0
    tokens: int = 0  # of those requests


def key_usage(db: Backend, key_id: str, requests_since: float, spend_since: float) -> Usage:
    """One query on the (key_id, ts) index: what the gateway's limits count for a key."""
    row = db.query(
        "SELECT SUM(CASE WHEN ts >= ? AND status != 429 THEN 1 ELSE 0 END),"
        " MIN(CASE WHEN ts >= ? AND status != 429 THEN ts END),"
        " SUM(CASE WHEN ts >= ? THEN cost_usd ELSE 0 END),"
        " SUM(CASE WHEN ts >= ? AND status != 429 THEN prompt_tokens + completion_tokens ELSE 0 END)"
        " FROM requests WHERE key_id = ? AND ts >= ?",
        [requests_since, requests_since, spend_since, requests_since, key_id, min(requests_since, spend_since)],
    )[0]
    first = None if row[1] is None else float(row[1])
    return Usage(int(row[0] or 0), first, _money(row[2]), int(row[3] or 0))


def model_spend(db: Backend, model: str, since: float) -> float:
    """What a model's answers cost since a time: one query on the (routed_model, ts) index (gateway/budgets.py)."""
    row = db.query("SELECT SUM(cost_usd) FROM requests WHERE routed_model = ? AND ts >= ?", [model, since])[0]
    return _money(row[0])


def end_user_spend(db: Backend, user: str, since: float) -> float:
    """What an end user's requests cost since a time: one query on the (end_user, ts) index (gateway/end_users.py)."""
    row = db.query("SELECT SUM(cost_usd) FROM requests WHERE end_user = ? AND ts >= ?", [user, since])[0]
    return _money(row[0])


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in [0, 100]) of an ascending list; None when empty."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def _money(x: Any) -> float:
    return round(float(x or 0.0), 10)


def model_table(db: Backend, q: StatsQuery) -> list[dict[str, Any]]:
    where, params = q.where()
    rows = db.query(
        "SELECT routed_model, MAX(tier), COUNT(*), SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END),"
        " SUM(prompt_tokens), SUM(completion_tokens), SUM(cost_usd), SUM(baseline_cost_usd), SUM(saved_usd),"
        " SUM(CASE WHEN cache = 'hit' THEN 1 ELSE 0 END), SUM(CASE WHEN cache != 'bypass' THEN 1 ELSE 0 END),"
        " SUM(usage_estimated), SUM(cached_tokens), SUM(CASE WHEN private_data IS NULL THEN 0 ELSE 1 END),"
        " SUM(degraded)"
        f" FROM requests WHERE {where} GROUP BY routed_model",
        params,
    )
    lat: dict[str | None, list[float]] = defaultdict(list)
    for model, ms in db.query(f"SELECT routed_model, latency_ms FROM requests WHERE {where} AND status < 400", params):
        lat[model].append(float(ms))
    # Quality beside cost: the judgements (clients' POST /v1/feedback and a policy's judge) of the answers in range.
    judged = {
        model: (int(n), float(mean))
        for model, n, mean in db.query(
            "SELECT q.routed_model, COUNT(*), AVG(f.score) FROM"
            f" (SELECT request_id, routed_model FROM requests WHERE {where}) q"
            " JOIN feedback f ON f.request_id = q.request_id GROUP BY q.routed_model",
            params,
        )
    }
    out = []
    for model, tier, n, errors, pt, ct, cost, base, saved_cache, hits, looked, estimated, cached, private, down in rows:
        ms = sorted(lat.get(model, []))
        out.append(
            {
                "model": model or NO_MODEL,
                "tier": tier,
                "requests": int(n),
                "errors": int(errors or 0),
                # Answered by a weaker model than the request needed (best effort: the adequate ones were down,
                # failing, over budget or full), so worth a look when it grows.
                "degraded": int(down or 0),
                "prompt_tokens": int(pt or 0),
                # Of those, read from the provider's prompt cache (and billed at its cached-input price).
                "cached_tokens": int(cached or 0),
                "completion_tokens": int(ct or 0),
                # Records whose tokens (so cost) the gateway estimated: the upstream reported no usage.
                "estimated_usage": int(estimated or 0),
                # Requests in which the policy found private data (kept local; refused ones count under "(none)").
                "private_data": int(private or 0),
                "cost_usd": _money(cost),
                "baseline_cost_usd": _money(base),
                "saved_usd": _money((base or 0) - (cost or 0)),
                "saved_by_cache_usd": _money(saved_cache),
                "cache_hits": int(hits or 0),
                "cache_hit_rate": round(int(hits) / int(looked), 4) if looked else None,
                "p50_ms": percentile(ms, 50),
                "p95_ms": percentile(ms, 95),
                "judged": judged.get(model, (0, 0.0))[0],
                "mean_judgement": round(judged[model][1], 4) if model in judged else None,
            }
        )
    return sorted(out, key=lambda r: (-r["cost_usd"], r["model"]))


def tier_mix(db: Backend, q: StatsQuery) -> list[dict[str, Any]]:
    where, params = q.where()
    rows = db.query(
        f"SELECT tier, COUNT(*), SUM(cost_usd) FROM requests WHERE {where} AND tier IS NOT NULL GROUP BY tier",
        params,
    )
    return [{"tier": int(t), "requests": int(n), "cost_usd": _money(c)} for t, n, c in sorted(rows)]


def series(db: Backend, q: StatsQuery) -> list[dict[str, Any]]:
    """Per time bucket (UTC) and model: requests, cost, baseline cost, saved."""
    where, params = q.where()
    b = db.bucket_expr(BUCKETS[q.bucket])
    rows = db.query(
        f"SELECT {b} AS bucket, routed_model, COUNT(*), SUM(cost_usd), SUM(baseline_cost_usd) FROM requests"
        f" WHERE {where} GROUP BY bucket, routed_model",
        params,
    )
    out = [
        {
            "bucket_start": int(bucket),
            "model": model or NO_MODEL,
            "requests": int(n),
            "cost_usd": _money(cost),
            "baseline_cost_usd": _money(base),
            "saved_usd": _money((base or 0) - (cost or 0)),
        }
        for bucket, model, n, cost, base in rows
    ]
    return sorted(out, key=lambda r: (r["bucket_start"], r["model"]))


def cascade_table(db: Backend, q: StatsQuery) -> list[dict[str, Any]]:
    """Per draft model of cascading policies: drafts kept / escalated / failed, mean confidence of the drafts that
    returned one, and what escalated drafts cost on top of their answers. The keep rate decides whether it pays."""
    where, params = q.where()
    rows = db.query(
        "SELECT draft_model, SUM(CASE WHEN cascade = 'kept' THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN cascade = 'escalated' THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN cascade = 'draft_failed' THEN 1 ELSE 0 END), AVG(draft_confidence), SUM(draft_cost_usd)"
        f" FROM requests WHERE {where} AND cascade IS NOT NULL GROUP BY draft_model",
        params,
    )
    out = [
        {
            "draft_model": model or NO_MODEL,
            "kept": int(kept),
            "escalated": int(up),
            "draft_failed": int(failed),
            "keep_rate": round(int(kept) / (int(kept) + int(up)), 4) if int(kept) + int(up) else None,
            "mean_confidence": round(float(conf), 4) if conf is not None else None,
            "escalated_draft_cost_usd": _money(cost),
        }
        for model, kept, up, failed, conf, cost in rows
    ]
    return sorted(out, key=lambda r: r["draft_model"])


def _spend_by(db: Backend, q: StatsQuery, column: str) -> list[tuple[str, int, int, float, float]]:
    """(value, requests, tokens, cost, baseline cost) per value of a text column, for records that have one."""
    where, params = q.where()
    rows = db.query(
        f"SELECT {column}, COUNT(*), SUM(prompt_tokens + completion_tokens), SUM(cost_usd), SUM(baseline_cost_usd)"
        f" FROM requests WHERE {where} AND {column} IS NOT NULL GROUP BY {column}",
        params,
    )
    return [(str(v), int(n), int(t or 0), float(c or 0.0), float(b or 0.0)) for v, n, t, c, b in rows]


def _top(name: str, sums: list[tuple[str, int, int, float, float]], top: int) -> list[dict[str, Any]]:
    """The biggest spenders first (then the busiest, then by name), as rows named by `name`."""
    out: list[dict[str, Any]] = [
        {
            name: v,
            "requests": n,
            "tokens": t,
            "cost_usd": _money(c),
            "baseline_cost_usd": _money(b),
            "saved_usd": _money(b - c),
        }
        for v, n, t, c, b in sums
    ]
    return sorted(out, key=lambda r: (-r["cost_usd"], -r["requests"], r[name]))[:top]


def end_users(db: Backend, q: StatsQuery, top: int = 20) -> list[dict[str, Any]]:
    """The end users (the requests' `user`) who spent the most: who is behind the bill, below the API key."""
    return _top("end_user", _spend_by(db, q, "end_user"), top)


def tag_table(db: Backend, q: StatsQuery, top: int = 20) -> list[dict[str, Any]]:
    """The tags (x-tiergate-tags) whose requests spent the most. A request with two tags counts in both, so the rows
    add up to more than the total."""
    per_tag: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0, 0.0])
    for combo, n, t, c, b in _spend_by(db, q, "tags"):
        for tag in filter(None, combo.split(",")):
            acc = per_tag[tag]
            acc[0] += n
            acc[1] += t
            acc[2] += c
            acc[3] += b
    return _top("tag", [(k, int(v[0]), int(v[1]), v[2], v[3]) for k, v in per_tag.items()], top)


def totals(table: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [
        "requests",
        "errors",
        "degraded",
        "prompt_tokens",
        "cached_tokens",
        "completion_tokens",
        "estimated_usage",
        "private_data",
        "cache_hits",
        "judged",
    ]
    money = ("cost_usd", "baseline_cost_usd", "saved_usd", "saved_by_cache_usd")
    t: dict[str, Any] = {k: sum(r[k] for r in table) for k in keys}
    t.update({k: _money(sum(r[k] for r in table)) for k in money})
    weighted = sum(r["judged"] * r["mean_judgement"] for r in table if r["judged"])
    t["mean_judgement"] = round(weighted / t["judged"], 4) if t["judged"] else None
    return t


def choices(db: Backend, since: float) -> dict[str, list[str]]:
    """Policies and key ids seen since a time: the dashboard's filter menus."""
    pol = db.query("SELECT DISTINCT policy FROM requests WHERE ts >= ? AND policy != ''", [since])
    keys = db.query("SELECT DISTINCT key_id FROM requests WHERE ts >= ? AND key_id IS NOT NULL", [since])
    return {"policies": sorted(p for (p,) in pol), "keys": sorted(k for (k,) in keys)}


def report(db: Backend, q: StatsQuery) -> dict[str, Any]:
    table = model_table(db, q)
    return {
        "range": {"since": q.since, "until": q.until, "bucket": q.bucket},
        "filters": {"policy": q.policy, "key": q.key_id, "user": q.end_user, "tag": q.tag},
        "totals": totals(table),
        "models": table,
        "tiers": tier_mix(db, q),
        "series": series(db, q),
        "cascade": cascade_table(db, q),
        "users": end_users(db, q),
        "tags": tag_table(db, q),
        "choices": choices(db, q.since),
    }


MODEL_COLUMNS = [
    "model",
    "tier",
    "requests",
    "errors",
    "degraded",
    "prompt_tokens",
    "cached_tokens",
    "completion_tokens",
    "estimated_usage",
    "private_data",
    "cost_usd",
    "baseline_cost_usd",
    "saved_usd",
    "saved_by_cache_usd",
    "cache_hit_rate",
    "p50_ms",
    "p95_ms",
    "judged",
    "mean_judgement",
]
SERIES_COLUMNS = ["bucket_start", "model", "requests", "cost_usd", "baseline_cost_usd", "saved_usd"]
USER_COLUMNS = ["end_user", "requests", "tokens", "cost_usd", "baseline_cost_usd", "saved_usd"]
TAG_COLUMNS = ["tag", "requests", "tokens", "cost_usd", "baseline_cost_usd", "saved_usd"]
CASCADE_COLUMNS = [
    "draft_model",
    "kept",
    "escalated",
    "draft_failed",
    "keep_rate",
    "mean_confidence",
    "escalated_draft_cost_usd",
]
