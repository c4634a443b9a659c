"""The cost ledger: one record per request (success, error or fallback), written off the request path.

`record()` only enqueues; a writer thread commits batches to SQLite. `close()` drains the queue first, so a
clean shutdown loses nothing. If the queue is full the record is written inline rather than dropped.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

log = logging.getLogger("tiergate.ledger")
SCHEMA_VERSION = 2
# Each step takes the schema from version i to i+1; a ledger file of any older version is brought up to date.
MIGRATIONS: dict[int, str] = {
    1: "ALTER TABLE requests ADD COLUMN cache TEXT NOT NULL DEFAULT 'bypass';"
    "ALTER TABLE requests ADD COLUMN saved_usd REAL NOT NULL DEFAULT 0;",
}


@dataclass
class LedgerRecord:
    ts: float
    request_id: str
    policy: str
    requested_model: str
    routed_model: str | None = None
    tier: int | None = None
    score: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    baseline_model: str | None = None
    baseline_cost_usd: float = 0.0
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    status: int = 200
    error_type: str | None = None
    fallbacks: list[str] = field(default_factory=list)
    stream: bool = False
    degraded: bool = False
    endpoint: str = "chat.completions"
    cache: str = "bypass"
    saved_usd: float = 0.0


COLUMNS = [f.name for f in fields(LedgerRecord)]
_DDL = """
CREATE TABLE IF NOT EXISTS requests (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  ts REAL NOT NULL, request_id TEXT NOT NULL UNIQUE, policy TEXT NOT NULL, requested_model TEXT NOT NULL,
  routed_model TEXT, tier INTEGER, score REAL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
  cost_usd REAL NOT NULL, baseline_model TEXT, baseline_cost_usd REAL NOT NULL, latency_ms REAL NOT NULL,
  ttft_ms REAL, status INTEGER NOT NULL, error_type TEXT, fallbacks TEXT NOT NULL, stream INTEGER NOT NULL,
  degraded INTEGER NOT NULL, endpoint TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts);
CREATE INDEX IF NOT EXISTS requests_model_ts ON requests (routed_model, ts);
"""


def _row(r: LedgerRecord) -> tuple[Any, ...]:
    d = asdict(r)
    d["fallbacks"] = json.dumps(d["fallbacks"])
    return tuple(d[c] for c in COLUMNS)


class SqliteLedger:
    def __init__(self, path: Path, batch: int = 256, max_queue: int = 50_000) -> None:
        self.path = path
        self._batch = batch
        self._q: queue.Queue[LedgerRecord | None] = queue.Queue(maxsize=max_queue)
        self._lock = threading.Lock()  # one connection, used by the writer thread and inline overflow writes
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        # Several gateway workers may share one ledger file: wait for the write lock instead of failing.
        self._conn.execute("PRAGMA busy_timeout=10000")
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._migrate()
        self._thread = threading.Thread(target=self._run, name="tiergate-ledger", daemon=True)
        self._thread.start()

    def _migrate(self) -> None:
        version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
        fresh = self._conn.execute("SELECT name FROM sqlite_master WHERE name='requests'").fetchone() is None
        if fresh:
            self._conn.executescript(_DDL)
            version = 1  # the DDL is version 1; the steps below bring it up to date like any old file
        for v in range(max(version, 1), SCHEMA_VERSION):
            self._conn.executescript(f"BEGIN; {MIGRATIONS[v]} PRAGMA user_version={v + 1}; COMMIT;")

    def record(self, rec: LedgerRecord) -> None:
        try:
            self._q.put_nowait(rec)
        except queue.Full:
            log.warning("ledger queue full; writing inline")
            self._write([rec])

    def _write(self, recs: Sequence[LedgerRecord]) -> None:
        placeholders = ",".join("?" * len(COLUMNS))
        with self._lock:
            self._conn.execute("BEGIN")
            self._conn.executemany(
                f"INSERT OR IGNORE INTO requests ({','.join(COLUMNS)}) VALUES ({placeholders})", [_row(r) for r in recs]
            )
            self._conn.execute("COMMIT")

    def _run(self) -> None:
        while True:
            first = self._q.get()
            batch: list[LedgerRecord] = [] if first is None else [first]
            stop = first is None
            while not stop and len(batch) < self._batch:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                else:
                    batch.append(nxt)
            if batch:
                try:
                    self._write(batch)
                except sqlite3.Error:
                    log.exception("ledger write of %d records failed; retrying inline once", len(batch))
                    self._write(batch)
            for _ in range(len(batch) + (1 if stop else 0)):
                self._q.task_done()
            if stop:
                return

    def alive(self) -> bool:
        return self._thread.is_alive()

    def flush(self) -> None:
        """Block until every record enqueued so far is committed."""
        self._q.join()

    def close(self) -> None:
        """Commit everything queued, then stop the writer. Safe to call twice."""
        if self._thread.is_alive():
            self._q.put(None)
            self._thread.join()
        with self._lock:
            self._conn.close()

    def per_model(self, since_ts: float = 0.0) -> list[dict[str, Any]]:
        """Requests, cache hits, cost and savings per policy and routed model since a time (chat only)."""
        self.flush()
        sql = (
            "SELECT policy, routed_model, COUNT(*), SUM(cache = 'hit'), SUM(cache != 'bypass'), SUM(cost_usd),"
            " SUM(baseline_cost_usd), SUM(saved_usd), SUM(status >= 400), SUM(prompt_tokens), SUM(completion_tokens)"
            " FROM requests WHERE ts >= ? AND endpoint = 'chat.completions' GROUP BY policy, routed_model"
            " ORDER BY policy, routed_model"
        )
        with self._lock:
            rows = self._conn.execute(sql, (since_ts,)).fetchall()
        out = []
        for policy, model, n, hits, looked, cost, base, saved, errors, pt, ct in rows:
            out.append(
                {
                    "policy": policy,
                    "model": model,
                    "requests": n,
                    "errors": errors,
                    "cache_hits": hits,
                    "cache_hit_rate": round(hits / looked, 4) if looked else None,
                    "cost_usd": cost,
                    "baseline_cost_usd": base,
                    "saved_by_cache_usd": saved,
                    "saved_by_routing_usd": base - cost - saved,
                    "prompt_tokens": pt,
                    "completion_tokens": ct,
                }
            )
        return out

    def rows(self, where: str = "1=1", params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        self.flush()
        with self._lock:
            cur = self._conn.execute(f"SELECT {','.join(COLUMNS)} FROM requests WHERE {where} ORDER BY id", params)
            out = [dict(zip(COLUMNS, r, strict=True)) for r in cur.fetchall()]
        for d in out:
            d["fallbacks"] = json.loads(d["fallbacks"])
        return out
