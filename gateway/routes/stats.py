"""GET /api/stats (JSON) and /api/stats.csv: the ledger summed per model, tier and time bucket, filtered by time
range, policy, key, end user and tag. Query: `since` (e.g. 24h) or `from`/`to` (epoch seconds or ISO 8601), `policy`,
`key`, `user`, `tag`, `bucket` (hour | day; by default hour up to three days, else day), and for CSV `table`
(models | series | users | tags)."""

from __future__ import annotations

import csv
import io
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from gateway import tags
from gateway.deps import Services, ledger_call
from gateway.errors import InvalidRequest
from gateway.ledger.stats import MODEL_COLUMNS, SERIES_COLUMNS, TAG_COLUMNS, USER_COLUMNS, StatsQuery, report
from gateway.timeparse import instant
from router.durations import duration_s

router = APIRouter()
MAX_RANGE_S = 400 * 86400


def parse_query(
    since: str | None,
    from_: str | None,
    to: str | None,
    policy: str | None,
    key: str | None,
    bucket: str | None,
    user: str | None = None,
    tag: str | None = None,
) -> StatsQuery:
    now = time.time()
    if tag and len(tags.parse(tag)) != 1:
        raise InvalidRequest("'tag' names one tag.", "tag", "invalid_value")
    try:
        until = instant(to) if to else now + 1  # +1: a record written this second is inside the window
    except ValueError as e:
        raise InvalidRequest(str(e), "to", "invalid_value") from None
    try:
        start = instant(from_) if from_ else until - duration_s(since or "24h")
    except ValueError as e:
        raise InvalidRequest(str(e), "from" if from_ else "since", "invalid_value") from None
    if not start < until:
        raise InvalidRequest("'from' must be before 'to'.", "from", "invalid_value")
    if until - start > MAX_RANGE_S:
        raise InvalidRequest(f"The range may span at most {MAX_RANGE_S // 86400} days.", "since", "invalid_value")
    b: Literal["hour", "day"]
    if bucket in (None, ""):
        b = "hour" if until - start <= 3 * 86400 else "day"
    elif bucket in ("hour", "day"):
        b = "hour" if bucket == "hour" else "day"
    else:
        raise InvalidRequest("'bucket' must be 'hour' or 'day'.", "bucket", "invalid_value")
    return StatsQuery(
        since=start,
        until=until,
        policy=policy or None,
        key_id=key or None,
        bucket=b,
        end_user=user or None,
        tag=tag.strip() if tag else None,
    )


async def _report(services: Services, q: StatsQuery) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        services.ledger.flush()  # what was recorded before this request is counted
        return report(services.ledger.reader, q)

    return await ledger_call(work)


def _doc(description: str, **schema: Any) -> Any:
    """A query parameter's documentation only: `parse_query` checks the values, with its own messages."""
    return Query(default=None, description=description, json_schema_extra=schema or None)


_INSTANT = "Epoch seconds or an ISO 8601 time (UTC when it names no zone)."


async def _query(
    since: str | None = _doc(
        f"A duration back from `to`: a positive number and a unit of s, m, h, d or w (default 24h; at most"
        f" {MAX_RANGE_S // 86400} days)."
    ),
    from_: str | None = Query(
        default=None, alias="from", description=f"The window's start, instead of `since`. {_INSTANT}"
    ),
    to: str | None = _doc(f"The window's end (default now). {_INSTANT}"),
    policy: str | None = None,
    key: str | None = None,
    bucket: str | None = _doc("The series' bucket (default: hour up to 3 days, else day).", enum=["hour", "day", ""]),
    user: str | None = None,
    tag: str | None = _doc("One tag (see `x-tiergate-tags`).", pattern=r"^(\s*[A-Za-z0-9_.:/=-]{1,64}\s*)?$"),
) -> StatsQuery:
    return parse_query(since, from_, to, policy, key, bucket, user, tag)


Filters = Annotated[StatsQuery, Depends(_query)]


@router.get("/api/stats")
async def stats(services: Services, q: Filters) -> dict[str, Any]:
    return await _report(services, q)


class CSVResponse(Response):
    media_type = "text/csv"


@router.get("/api/stats.csv", response_class=CSVResponse)
async def stats_csv(
    services: Services,
    q: Filters,
    table: Annotated[str, Query(json_schema_extra={"enum": ["models", "series", "users", "tags"]})] = "models",
) -> Response:
    columns = {"models": MODEL_COLUMNS, "series": SERIES_COLUMNS, "users": USER_COLUMNS, "tags": TAG_COLUMNS}.get(table)
    if columns is None:
        raise InvalidRequest("'table' must be 'models', 'series', 'users' or 'tags'.", "table", "invalid_value")
    data = await _report(services, q)
    out = io.StringIO()
    w = csv.DictWriter(out, columns, extrasaction="ignore")
    w.writeheader()
    w.writerows(data[table])
    return CSVResponse(
        out.getvalue(),
        headers={"content-disposition": f'attachment; filename="tiergate-{table}.csv"'},
    )
