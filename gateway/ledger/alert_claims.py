"""The ledger's `alerts` table: which alerts have been sent, so that of all workers and gateways on one ledger only
the first to claim an alert sends it (gateway/alerts.py)."""

from __future__ import annotations

import time

from gateway.ledger.backends import Backend

_CLAIM = "INSERT INTO alerts (key, ts) VALUES (?, ?) ON CONFLICT (key) DO NOTHING RETURNING key"


def claim(db: Backend, key: str, ts: float | None = None) -> bool:
    """True if this call is the first to claim `key` (committed when this returns); raises LedgerUnavailable."""
    return bool(db.query(_CLAIM, (key, time.time() if ts is None else ts)))
