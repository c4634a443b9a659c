"""The cost ledger: one record per request, stored in SQLite or PostgreSQL, written off the request path."""

from __future__ import annotations

from pathlib import Path

from gateway.ledger.backends import Backend, LedgerUnavailable, make_backend
from gateway.ledger.record import COLUMNS, LedgerRecord
from gateway.ledger.schema import SCHEMA_VERSION
from gateway.ledger.writer import GIVE_WAY_AT, Ledger

__all__ = ["COLUMNS", "SCHEMA_VERSION", "Backend", "Ledger", "LedgerRecord", "LedgerUnavailable", "open_ledger"]


def default_spool_dir(url: str) -> Path:
    """Beside a SQLite file (`<file>.spool`); for PostgreSQL, `tiergate-ledger.spool` in the working folder."""
    if url.startswith(("postgresql://", "postgres://")):
        return Path("tiergate-ledger.spool")
    return Path(url.removeprefix("sqlite:///") + ".spool")


def open_ledger(
    url: str | Path,
    spool_dir: Path | None = None,
    max_queue: int = 50_000,
    retry_s: float = 0.5,
    give_way_at: int = GIVE_WAY_AT,
) -> Ledger:
    """A running ledger for a PostgreSQL URL, a `sqlite:///` URL or a plain SQLite path."""
    u = str(url)
    spool = spool_dir or default_spool_dir(u)
    return Ledger(
        make_backend(u), make_backend(u), spool, max_queue=max_queue, retry_s=retry_s, give_way_at=give_way_at
    )
