"""`tiergate prune-ledger`: delete old request records now (the gateway's TIERGATE_LEDGER_RETENTION does the same
every hour), keeping what a key's or a model's budget window or a judgement still needs; `--dry-run` only counts
them."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from gateway.ledger.backends import LedgerUnavailable, migrated
from gateway.ledger.retention import count_old, cutoff, prune
from gateway.policy_file import PolicyFileError, load


def run(url: str, older_than_s: float, config: Path, dry_run: bool) -> int:
    try:
        cfg = load(config)
    except PolicyFileError as e:
        print(f"tiergate prune-ledger: {e}", file=sys.stderr)
        return 2
    before = cutoff(time.time(), older_than_s, cfg)
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(before))
    try:
        with migrated(url) as db:
            n = count_old(db, before) if dry_run else prune(db, before)
    except LedgerUnavailable as e:
        print(f"tiergate prune-ledger: {e}", file=sys.stderr)
        return 1
    print(f"{'would delete' if dry_run else 'deleted'} {n} request records from before {when}")
    return 0
