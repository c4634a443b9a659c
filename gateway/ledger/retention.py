"""Ledger retention: which request records are old enough to delete, and deleting them in short batches.

A record is kept, whatever its age, while it can still matter: inside the longest budget window of any API key or
model (budgets are counted from these rows), or when a client judged its answer (POST /v1/feedback: a training label,
see gateway/ledger/feedback.py). Judgements themselves are small and never deleted here.
"""

from __future__ import annotations

from gateway.ledger.backends import Backend
from router.policy import TiergateConfig

_OLD = "FROM requests WHERE ts < ? AND request_id NOT IN (SELECT request_id FROM feedback)"
# Batches keep each write transaction short, so the ledger writer's inserts never wait long behind a deletion.
_DELETE = f"DELETE FROM requests WHERE id IN (SELECT id {_OLD} ORDER BY id LIMIT ?) RETURNING id"


def cutoff(now: float, retention_s: float, config: TiergateConfig | None) -> float:
    """Records from before this time (epoch seconds) may go: `retention_s` ago, or earlier if a key's or a model's
    budget window reaches further back."""
    budgets = [*(k.budget for k in config.keys), *(m.budget for m in config.models)] if config else []
    longest = max((b.per_s for b in budgets if b is not None), default=0.0)
    return now - max(retention_s, longest)


def count_old(db: Backend, before: float) -> int:
    return int(db.query(f"SELECT count(*) {_OLD}", (before,))[0][0])


def prune(db: Backend, before: float, batch: int = 5000) -> int:
    """Delete the records older than `before` that nothing still needs; returns how many went. Raises
    LedgerUnavailable if the database fails (what was deleted until then stays deleted)."""
    total = 0
    while True:
        n = len(db.query(_DELETE, (before, batch)))
        total += n
        if n < batch:
            return total
