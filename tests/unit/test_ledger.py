from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from gateway.ledger import _DDL, SCHEMA_VERSION, LedgerRecord, SqliteLedger


def test_a_version_1_ledger_is_migrated_in_place_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as c:
        c.executescript(_DDL)
        c.execute(
            "INSERT INTO requests (ts, request_id, policy, requested_model, prompt_tokens, completion_tokens, cost_usd,"
            " baseline_cost_usd, latency_ms, status, fallbacks, stream, degraded, endpoint)"
            " VALUES (1, 'old', 'default', 'auto', 1, 2, 0.5, 1.0, 3, 200, '[]', 0, 0, 'chat.completions')"
        )
        c.execute("PRAGMA user_version=1")
    ledger = SqliteLedger(path)
    ledger.record(
        LedgerRecord(ts=time.time(), request_id="new", policy="p", requested_model="m", cache="hit", saved_usd=0.25)
    )
    rows = ledger.rows()
    ledger.close()
    assert [(r["request_id"], r["cache"], r["saved_usd"]) for r in rows] == [
        ("old", "bypass", 0.0),
        ("new", "hit", 0.25),
    ]
    with sqlite3.connect(path) as c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_close_commits_everything_queued(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "l.sqlite3")
    for i in range(2000):
        ledger.record(LedgerRecord(ts=time.time(), request_id=f"r{i}", policy="p", requested_model="m"))
    ledger.close()
    ledger.close()  # a second close is harmless
    with sqlite3.connect(tmp_path / "l.sqlite3") as c:
        assert c.execute("SELECT count(*) FROM requests").fetchone()[0] == 2000
