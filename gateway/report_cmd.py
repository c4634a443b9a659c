"""`tiergate report`: the per-model table of the ledger for a recent window, as text, CSV or JSON."""

from __future__ import annotations

import csv
import json
import sys
import time
from typing import Any

from gateway.ledger.backends import LedgerUnavailable, migrated
from gateway.ledger.stats import CASCADE_COLUMNS, MODEL_COLUMNS, TAG_COLUMNS, USER_COLUMNS, StatsQuery, report


def _cell(v: Any, column: str = "") -> str:
    """A value as the text table shows it: dollars to the millionth (a local call costs that little), milliseconds
    to a tenth, shares and means to three places."""
    if v is None:
        return "-"
    if isinstance(v, float):
        if column.endswith("_ms"):
            return f"{v:.1f}"
        if column.endswith("usd"):
            return f"{v:.6f}" if abs(v) < 1000 else f"{v:.2f}"
        return f"{v:.3f}"
    return str(v)


def _numeric(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def format_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Numbers right-aligned, so their places line up; text (names, statuses, messages) left-aligned, headers
    included, so a long cell does not push its column's name and short neighbours far to the right."""
    cells = [columns, *[[_cell(r.get(c), c) for c in columns] for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    right = [all(_numeric(r.get(c)) for r in rows) for c in columns]  # a column of only '-' holds numbers too
    lines = [
        "  ".join(v.rjust(w) if right[i] else v.ljust(w) for i, (v, w) in enumerate(zip(row, widths, strict=True)))
        for row in cells
    ]
    return "\n".join(line.rstrip() for line in lines)


def run(
    url: str,
    since_s: float,
    policy: str | None,
    key: str | None,
    fmt: str,
    user: str | None = None,
    tag: str | None = None,
) -> int:
    now = time.time()
    q = StatsQuery(since=now - since_s, until=now + 1, policy=policy, key_id=key, end_user=user, tag=tag)
    try:
        with migrated(url) as db:
            data = report(db, q)
    except LedgerUnavailable as e:
        print(f"tiergate report: {e}", file=sys.stderr)
        return 1
    if fmt == "json":
        print(json.dumps(data, indent=2))
    elif fmt == "csv":
        w = csv.DictWriter(sys.stdout, MODEL_COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(data["models"])
    else:
        total = {"model": "TOTAL", **data["totals"]}
        print(f"ledger {db.where}, last {since_s / 3600:g} h" + (f", policy {policy}" if policy else ""))
        print(format_table([*data["models"], total], MODEL_COLUMNS))
        if data["cascade"]:
            print("\ncascade drafts")
            print(format_table(data["cascade"], CASCADE_COLUMNS))
        if data["users"]:
            print("\nend users (the requests' `user`), top spenders")
            print(format_table(data["users"], USER_COLUMNS))
        if data["tags"]:
            print("\ntags (x-tiergate-tags), top spenders; a request with several tags counts in each")
            print(format_table(data["tags"], TAG_COLUMNS))
    return 0
