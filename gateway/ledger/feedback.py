"""Clients' judgements of answers (POST /v1/feedback) and their export as training rows in the shared schema.

A judgement is a score in [0, 1] for one request's answer (1 = good enough). Exported, a request whose prompt was
recorded (`record_prompts` in its policy) and that has a judgement becomes one row: its prompt and
`scores: {the model that answered: the latest judgement}`. `tiergate train --data FILE --weak <local model>` then
learns from the rows that model answered (classifiers/labels.py: a row is kept when the weak model has a score);
answers of stronger models say nothing about whether the local one would have done, so they are exported but not
used as labels for it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from gateway.ledger.backends import Backend

_INSERT = "INSERT INTO feedback (ts, request_id, score, key_id) VALUES (?, ?, ?, ?) RETURNING id"
_LABELLED = (
    "SELECT r.request_id, r.policy, r.prompt, r.routed_model, f.score FROM feedback f"
    " JOIN requests r ON r.request_id = f.request_id"
    " WHERE f.ts >= ? AND r.prompt IS NOT NULL AND r.routed_model IS NOT NULL ORDER BY f.id"
)


def add(db: Backend, request_id: str, score: float, key_id: str | None, ts: float | None = None) -> int:
    """Store one judgement at once (committed when this returns); raises LedgerUnavailable."""
    rows = db.query(_INSERT, (time.time() if ts is None else ts, request_id, score, key_id))
    return int(rows[0][0])


def labelled_rows(db: Backend, since: float = 0.0) -> Iterator[dict[str, Any]]:
    """Training rows for the requests judged since `since` (epoch seconds); a request's latest judgement wins."""
    latest: dict[str, dict[str, Any]] = {}
    for request_id, policy, prompt, model, score in db.query(_LABELLED, (since,)):
        latest[request_id] = {
            "id": f"tiergate/{request_id}",
            "source": "tiergate",
            "category": policy,
            "prompt": prompt,
            "scores": {model: float(score)},
        }
    yield from latest.values()
