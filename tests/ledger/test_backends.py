"""The ledger on both backends (SQLite file, the machine's PostgreSQL): schema and migrations, batching, drain on
close, idempotent inserts, and records that survive a database that is down when they are written."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from gateway.ledger import SCHEMA_VERSION, LedgerRecord, open_ledger
from gateway.ledger.backends import LedgerRejected, make_backend
from gateway.ledger.schema import steps
from tests.fakes.postgres import OwnPostgres


def rec(i: int | str, **kw: object) -> LedgerRecord:
    return LedgerRecord(ts=time.time(), request_id=f"r{i}", policy="p", requested_model="m", **kw)  # type: ignore[arg-type]


def wait_settled(ledger: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not ledger.settled():  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, ledger.status()  # type: ignore[attr-defined]
        time.sleep(0.05)


def _make_v1(url: str) -> None:
    """A database as the first release left it: the first schema step only, with one row."""
    db = make_backend(url)
    (_, first), *_ = steps(db.dialect, 0)
    old_row = (
        "INSERT INTO requests (ts, request_id, policy, requested_model, prompt_tokens, completion_tokens, cost_usd,"
        " baseline_cost_usd, latency_ms, status, fallbacks, stream, degraded, endpoint)"
        " VALUES (1, 'old', 'default', 'auto', 1, 2, 0.5, 1.0, 3, 200, '[]', 0, 0, 'chat.completions')"
    )
    if db.dialect == "sqlite":
        import sqlite3

        with sqlite3.connect(url) as c:
            for s in first:
                c.execute(s)
            c.execute(old_row)
            c.execute("PRAGMA user_version=1")
    else:
        with psycopg.connect(url, autocommit=True) as c:
            for s in first:
                c.execute(s)
            c.execute(old_row)
            c.execute("CREATE TABLE tiergate_schema (version INTEGER NOT NULL)")
            c.execute("INSERT INTO tiergate_schema VALUES (1)")


def test_an_old_ledger_is_migrated_in_place_and_keeps_its_rows(ledger_url: str) -> None:
    _make_v1(ledger_url)
    ledger = open_ledger(ledger_url)
    ledger.record(rec("new", cache="hit", saved_usd=0.25, key_id="key-abc"))
    rows = ledger.rows()
    ledger.close()
    assert [(r["request_id"], r["cache"], r["saved_usd"], r["key_id"]) for r in rows] == [
        ("old", "bypass", 0.0, None),
        ("rnew", "hit", 0.25, "key-abc"),
    ]
    db = make_backend(ledger_url)
    version = (
        db.query("PRAGMA user_version") if db.dialect == "sqlite" else db.query("SELECT version FROM tiergate_schema")
    )
    db.close()
    assert version == [(SCHEMA_VERSION,)]


def test_two_ledgers_opening_one_database_at_once_migrate_it_once(ledger_url: str) -> None:
    a, b = open_ledger(ledger_url), open_ledger(ledger_url)
    a.record(rec(1))
    b.record(rec(2))
    assert {r["request_id"] for r in a.rows()} | {r["request_id"] for r in b.rows()} == {"r1", "r2"}
    a.close()
    b.close()


def test_close_commits_everything_queued_and_a_record_round_trips(ledger_url: str) -> None:
    ledger = open_ledger(ledger_url)
    full = rec(
        "full",
        routed_model="big",
        tier=2,
        score=0.75,
        prompt_tokens=11,
        completion_tokens=7,
        cost_usd=0.0012,
        baseline_model="big",
        baseline_cost_usd=0.0012,
        latency_ms=12.5,
        ttft_ms=3.25,
        status=200,
        fallbacks=["small", "mid"],
        stream=True,
        degraded=True,
        cache="miss",
        key_id="key-1",
        prompt="hello",
    )
    ledger.record(full)
    for i in range(3000):
        ledger.record(rec(i))
    ledger.close()
    ledger.close()  # a second close is harmless
    again = open_ledger(ledger_url)
    rows = again.rows()
    again.close()
    assert len(rows) == 3001
    got = rows[0]
    assert got == {**full.__dict__, "stream": 1, "degraded": 1}


def test_a_replayed_record_is_not_counted_twice(ledger_url: str) -> None:
    db = make_backend(ledger_url)
    db.migrate()
    db.insert([rec(1), rec(2)])
    db.insert([rec(2), rec(3)])  # a replay after a crash may repeat what was already committed
    assert db.query("SELECT count(*) FROM requests") == [(3,)]
    db.close()


def test_what_clients_and_upstreams_write_is_stored_however_odd_and_the_ledger_stays_up(ledger_url: str) -> None:
    """NUL in a client's text (JSON allows it) is not text to PostgreSQL, and a count past 2**63 is no integer to
    either database: the batch failed, and on PostgreSQL the writer took the database for down and spooled every
    record after it for good (the bad one in the spool failing each replay). Measured on `make serve`: one request
    with `"user": "bob\u0000"` left its worker spooling."""
    ledger = open_ledger(ledger_url)
    odd = LedgerRecord(
        ts=time.time(), request_id="r1", policy="p", requested_model="gpt\x00", end_user="bob\x00", prompt="a\x00b"
    )
    odd.prompt_tokens = 10**20
    ledger.record(odd)
    ledger.record(rec(2, end_user="alice"))
    (first, second) = ledger.rows()
    assert (first["requested_model"], first["end_user"], first["prompt"]) == ("gpt\ufffd", "bob\ufffd", "a\ufffdb")
    assert first["prompt_tokens"] == 2**63 - 1 and second["end_user"] == "alice"
    assert ledger.status()["state"] == "up" and ledger.settled()
    # A filter as the client sent it finds the record as stored, instead of failing as the database being down.
    assert ledger.query("SELECT request_id FROM requests WHERE end_user = ?", ["bob\x00"]) == [("r1",)]
    ledger.close()


def test_a_record_either_database_refuses_is_set_aside_and_the_rest_of_its_batch_goes_in(ledger_url: str) -> None:
    """Any value a database cannot store (here a tier past 64 bits, which no code path writes today) is told from
    the database being down: the record is set aside, its batch-mates are committed, the ledger stays up."""
    db = make_backend(ledger_url)
    db.migrate()
    with pytest.raises(LedgerRejected):
        db.insert([rec(1), rec(2, tier=10**20)])
    db.close()
    ledger = open_ledger(ledger_url)
    for r in (rec(1), rec(2, tier=10**20), rec(3)):
        ledger.record(r)
    assert [r["request_id"] for r in ledger.rows()] == ["r1", "r3"]
    assert ledger.status()["state"] == "up" and ledger.status()["rejected"] == 1
    ledger.close()


def test_records_written_while_the_database_is_down_arrive_when_it_is_back(
    own_postgres: OwnPostgres, tmp_path: Path
) -> None:
    own_postgres.stop()
    ledger = open_ledger(own_postgres.url, tmp_path / "spool", retry_s=0.1)
    for i in range(500):
        ledger.record(rec(i))
    ledger.flush()
    status = ledger.status()
    assert status["state"] == "spooling" and status["spooled"] == 500, status
    assert any((tmp_path / "spool").glob("active-*.jsonl"))
    own_postgres.start()
    wait_settled(ledger)
    assert len(ledger.rows()) == 500
    # Replayed files are removed; what is left is the live ledger's own journal (gateway/ledger/journal.py).
    assert all(ledger.journal.token in p.name for p in (tmp_path / "spool").glob("*"))
    ledger.close()
    assert not list((tmp_path / "spool").glob("*"))


def test_records_spooled_at_shutdown_are_replayed_by_the_next_start(own_postgres: OwnPostgres, tmp_path: Path) -> None:
    own_postgres.stop()
    first = open_ledger(own_postgres.url, tmp_path / "spool", retry_s=0.1)
    for i in range(50):
        first.record(rec(i))
    first.close()  # the database is still down: the records stay in the spool
    assert any((tmp_path / "spool").glob("*.jsonl"))
    own_postgres.start()
    second = open_ledger(own_postgres.url, tmp_path / "spool", retry_s=0.1)
    wait_settled(second)
    assert sorted(r["request_id"] for r in second.rows()) == sorted(f"r{i}" for i in range(50))
    second.close()


@pytest.mark.parametrize("url", ["sqlite:///{tmp}/x.sqlite3", "{tmp}/y.sqlite3"])
def test_sqlite_urls_and_plain_paths_name_the_same_kind_of_ledger(url: str, tmp_path: Path) -> None:
    db = make_backend(url.format(tmp=tmp_path))
    assert db.dialect == "sqlite"
    db.migrate()
    db.close()
    assert list(tmp_path.glob("*.sqlite3"))


def test_an_alert_is_claimed_once_on_either_backend(ledger_url: str) -> None:
    from gateway.ledger.alert_claims import claim

    db = make_backend(ledger_url)
    db.migrate()
    try:
        assert claim(db, "budget:key:app:0.8:1d:20000") is True
        assert claim(db, "budget:key:app:0.8:1d:20000") is False  # another worker's copy of the same alert
        assert claim(db, "budget:key:app:1:1d:20000") is True
    finally:
        db.close()
