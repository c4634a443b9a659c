"""`tiergate export-labels`: judged requests from the ledger as a JSONL file in the shared outcome schema."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import orjson

from gateway.ledger.backends import LedgerUnavailable, migrated
from gateway.ledger.feedback import labelled_rows


def run(url: str, out: Path, since_s: float | None) -> int:
    try:
        with migrated(url) as db:  # an older ledger gets the feedback table, empty
            rows = list(labelled_rows(db, 0.0 if since_s is None else time.time() - since_s))
    except LedgerUnavailable as e:
        print(f"tiergate export-labels: {e}", file=sys.stderr)
        return 1
    out.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    models = sorted({m for r in rows for m in r["scores"]})
    print(f"wrote {len(rows)} judged prompts to {out} (answered by: {', '.join(models) or 'none'})", file=sys.stderr)
    return 0
