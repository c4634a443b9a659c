"""`tiergate export-requests`: the ledger's requests in a window, one row each, as CSV or JSONL (for finance and BI
tools), written page by page so a large ledger never sits in memory. The columns are GET /api/requests' (no prompts)."""

from __future__ import annotations

import csv
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from gateway.ledger.backends import Backend, LedgerUnavailable, migrated
from gateway.ledger.request_log import COLUMNS, MAX_LIMIT, recent
from gateway.ledger.stats import StatsQuery

PAGE = MAX_LIMIT


def _rows(db: Backend, q: StatsQuery) -> Iterator[dict[str, Any]]:
    before: int | None = None
    while True:
        page = recent(db, q, limit=PAGE, before_id=before)
        yield from page
        if len(page) < PAGE:
            return
        before = int(page[-1]["id"])


def _write(rows: Iterator[dict[str, Any]], out: IO[str], fmt: str) -> int:
    n = 0
    if fmt == "csv":
        w = csv.DictWriter(out, COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow(
                {
                    **r,
                    "fallbacks": ",".join(r["fallbacks"]),
                    "tags": ",".join(r["tags"]),
                    "private_data": ",".join(r["private_data"]),
                }
            )
            n += 1
    else:
        for r in rows:
            out.write(orjson.dumps(r).decode() + "\n")
            n += 1
    return n


def run(url: str, out: Path, since_s: float, fmt: str) -> int:
    until = time.time() + 1
    q = StatsQuery(since=until - since_s, until=until)
    try:
        with migrated(url) as db, out.open("w", encoding="utf-8", newline="") as f:
            n = _write(_rows(db, q), f, fmt)
    except LedgerUnavailable as e:
        print(f"tiergate export-requests: {e}", file=sys.stderr)
        return 1
    print(f"wrote {n} requests to {out}", file=sys.stderr)
    return 0
