"""Ledger storage: SQLite (embedded, the default) and PostgreSQL (by URL), behind one small interface.

A backend owns one connection, guarded by a lock, and reconnects lazily after a failure; a database error surfaces
as `LedgerUnavailable` so the writer can spool instead, or as `LedgerRejected` when it is about the records.
Queries are written once with `?` placeholders.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from gateway.ledger.record import COLUMNS, LedgerRecord, storable_text, to_row
from gateway.ledger.schema import Dialect, steps

_ROW = "(" + ",".join("?" * len(COLUMNS)) + ")"
# Rows per INSERT statement: 256 x 32 columns stays under SQLite's 32766 bound parameters.
ROWS_PER_STATEMENT = 256


@lru_cache(maxsize=64)
def insert_sql(rows: int) -> str:
    """One multi-row INSERT. One statement per batch, not one per row: the database driver lets go of the
    interpreter lock around every statement, and under load getting it back costs up to a switch interval (5 ms),
    which made per-row inserts fall far behind a busy event loop."""
    return (
        f"INSERT INTO requests ({','.join(COLUMNS)}) VALUES {','.join([_ROW] * rows)}"
        " ON CONFLICT (request_id) DO NOTHING"  # a replayed spool may repeat records already committed
    )


def statements(recs: Sequence[LedgerRecord]) -> Iterator[tuple[str, list[Any]]]:
    for i in range(0, len(recs), ROWS_PER_STATEMENT):
        chunk = recs[i : i + ROWS_PER_STATEMENT]
        yield insert_sql(len(chunk)), [v for r in chunk for v in to_row(r)]


def _storable(params: Sequence[Any]) -> tuple[Any, ...]:
    """A query's parameters as records store them: a filter or a feedback's request id comes as the client sent it,
    NUL and all, which PostgreSQL refuses in text (it read as the database being down: a 503), and which records
    keep as U+FFFD (record.py), so it is looked up as that."""
    return tuple(storable_text(v) if isinstance(v, str) else v for v in params)


class LedgerUnavailable(Exception):
    """The database cannot be written or read right now."""


class LedgerRejected(Exception):
    """The database is there but refuses these records (a value it cannot store): trying them again cannot help,
    and waiting for it to come back, as for LedgerUnavailable, would hold every later record back with them."""


@contextmanager
def _unavailable_if_rejected() -> Iterator[None]:
    """For queries: their callers (the dashboard, feedback) know one failure, the ledger unavailable; only the
    writer tells refused records apart."""
    try:
        yield
    except LedgerRejected as e:
        raise LedgerUnavailable(str(e)) from e


class Backend(Protocol):
    dialect: Dialect
    where: str  # for messages: a file path or a URL without its password

    def migrate(self) -> None: ...
    def insert(self, recs: Sequence[LedgerRecord]) -> None: ...
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...
    def bucket_expr(self, seconds: int) -> str: ...
    def close(self) -> None: ...


class SqliteBackend:
    dialect: Dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                if self._conn is None:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
                    # Several gateway workers may share one file: wait for the write lock instead of failing.
                    conn.execute("PRAGMA busy_timeout=10000")
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.execute("PRAGMA synchronous=NORMAL")
                    self._conn = conn
                yield self._conn
            except (sqlite3.DataError, sqlite3.IntegrityError, OverflowError) as e:
                raise LedgerRejected(f"SQLite ledger {self.path}: {e}") from e  # the connection is fine
            except (sqlite3.Error, OSError) as e:
                self._drop()
                raise LedgerUnavailable(f"SQLite ledger {self.path}: {e}") from e

    def _drop(self) -> None:
        if self._conn is not None:
            with suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None

    def migrate(self) -> None:
        with self._connection() as c:
            c.execute("BEGIN IMMEDIATE")  # one worker migrates; the others wait, then find nothing to do
            try:
                version = int(c.execute("PRAGMA user_version").fetchone()[0])
                has_table = c.execute("SELECT 1 FROM sqlite_master WHERE name='requests'").fetchone() is not None
                if has_table and version == 0:
                    version = 1  # files from before versioning hold the first schema
                for reached, stmts in steps("sqlite", version):
                    for s in stmts:
                        c.execute(s)
                    c.execute(f"PRAGMA user_version={reached}")
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

    def insert(self, recs: Sequence[LedgerRecord]) -> None:
        with self._connection() as c:
            c.execute("BEGIN")
            try:
                for sql, params in statements(recs):
                    c.execute(sql, params)
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with _unavailable_if_rejected(), self._connection() as c:
            return c.execute(sql, _storable(params)).fetchall()

    def bucket_expr(self, seconds: int) -> str:
        return f"(CAST(ts / {seconds} AS INTEGER) * {seconds})"  # ts > 0, so truncation is floor

    def close(self) -> None:
        with self._lock:
            self._drop()


class PostgresBackend:
    dialect: Dialect = "postgres"

    def __init__(self, url: str, connect_timeout_s: float = 3.0, statement_timeout_ms: int = 10_000) -> None:
        import psycopg.conninfo

        self.url = url
        info = psycopg.conninfo.conninfo_to_dict(url)
        self.where = f"postgresql://{info.get('host', '')}:{info.get('port', 5432)}/{info.get('dbname', '')}"
        self._connect_timeout = max(1, round(connect_timeout_s))
        # A hung server must not hold the writer forever: bound every statement.
        self._options = f"-c statement_timeout={statement_timeout_ms}"
        self._conn: Any = None
        self._lock = threading.Lock()

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        import psycopg

        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(
                        self.url, autocommit=True, connect_timeout=self._connect_timeout, options=self._options
                    )
                yield self._conn
            except (psycopg.DataError, psycopg.IntegrityError) as e:
                raise LedgerRejected(f"PostgreSQL ledger {self.where}: {str(e).strip()}") from e
            except (psycopg.Error, OSError) as e:
                self._drop()
                raise LedgerUnavailable(f"PostgreSQL ledger {self.where}: {str(e).strip()}") from e

    def _drop(self) -> None:
        if self._conn is not None:
            with suppress(Exception):  # closing a broken connection may fail any way; it is gone either way
                self._conn.close()
            self._conn = None

    def migrate(self) -> None:
        with self._connection() as c, c.transaction():
            # Workers starting together: one migrates, the rest wait on this lock and then find nothing to do.
            c.execute("SELECT pg_advisory_xact_lock(7207001)")
            c.execute("CREATE TABLE IF NOT EXISTS tiergate_schema (version INTEGER NOT NULL)")
            row = c.execute("SELECT max(version) FROM tiergate_schema").fetchone()
            version = int(row[0]) if row and row[0] is not None else 0
            for reached, stmts in steps("postgres", version):
                for s in stmts:
                    c.execute(s)
                c.execute("DELETE FROM tiergate_schema")
                c.execute("INSERT INTO tiergate_schema (version) VALUES (%s)", (reached,))

    def insert(self, recs: Sequence[LedgerRecord]) -> None:
        with self._connection() as c, c.transaction(), c.cursor() as cur:
            for sql, params in statements(recs):
                cur.execute(sql.replace("?", "%s"), params)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with _unavailable_if_rejected(), self._connection() as c:
            rows: list[tuple[Any, ...]] = c.execute(sql.replace("?", "%s"), _storable(params)).fetchall()
            return rows

    def bucket_expr(self, seconds: int) -> str:
        return f"(floor(ts / {seconds}) * {seconds})"

    def close(self) -> None:
        with self._lock:
            self._drop()


@contextmanager
def migrated(url: str) -> Iterator[Backend]:
    """The ledger at `url` for a command that reads it, migrated first (an older ledger reads as the current schema,
    empty where it has nothing); closed afterwards. Raises LedgerUnavailable, also for a SQLite file that is not
    there: opening it would make an empty ledger at a mistyped path and report no traffic, where the user meant
    another file (the gateway makes its ledger itself, on its first start)."""
    db = make_backend(url)
    if isinstance(db, SqliteBackend) and not db.path.exists():
        raise LedgerUnavailable(f"no SQLite ledger at {db.path}")
    try:
        db.migrate()
        yield db
    finally:
        db.close()


def make_backend(url: str) -> Backend:
    """`postgresql://...` (or `postgres://`) for PostgreSQL; `sqlite:///path` or a plain path for SQLite."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresBackend(url)
    return SqliteBackend(Path(url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url))
