"""The writer and spool with a fake backend at the seam: a full queue spools instead of blocking or dropping, a
dead process's spool is replayed by the next one, a torn last line is skipped, a refusing disk keeps records."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway.ledger import LedgerRecord, LedgerUnavailable
from gateway.ledger.backends import LedgerRejected
from gateway.ledger.record import to_line
from gateway.ledger.schema import Dialect
from gateway.ledger.writer import GIVE_WAY_S, WRITER_NICE, Ledger
from tests.ledger.test_backends import rec, wait_settled


class FakeBackend:
    """Stores records in a dict; `down` makes every call fail; `gate` holds inserts until set."""

    dialect: Dialect = "sqlite"
    where = "fake"

    def __init__(self) -> None:
        self.rows: dict[str, LedgerRecord] = {}
        self.down = False
        self.gate = threading.Event()
        self.gate.set()
        self.inserts = 0
        self.refuse: set[str] = set()  # request ids the database cannot store (LedgerRejected)

    def migrate(self) -> None:
        if self.down:
            raise LedgerUnavailable("fake: down")

    def insert(self, recs: Sequence[LedgerRecord]) -> None:
        self.gate.wait()
        if self.down:
            raise LedgerUnavailable("fake: down")
        if any(r.request_id in self.refuse for r in recs):
            raise LedgerRejected("fake: a value it cannot store")  # the whole statement fails, as on a real one
        self.inserts += 1
        for r in recs:
            self.rows.setdefault(r.request_id, r)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return []

    def bucket_expr(self, seconds: int) -> str:
        return "0"

    def close(self) -> None:
        pass


def test_a_full_queue_spools_instead_of_blocking_or_dropping(tmp_path: Path) -> None:
    db = FakeBackend()
    db.gate.clear()  # the database is slow: the writer is stuck on its first batch
    ledger = Ledger(db, db, tmp_path / "spool", max_queue=10, retry_s=0.05)
    started = time.perf_counter()
    for i in range(200):
        ledger.record(rec(i))
    assert time.perf_counter() - started < 2.0  # record() never waited for the database
    assert ledger.status()["spooled"] >= 150
    db.gate.set()
    wait_settled(ledger, 10)  # the writer replays what overflowed as soon as it is free
    ledger.close()
    assert sorted(db.rows) == sorted(f"r{i}" for i in range(200))
    assert not list((tmp_path / "spool").glob("*.jsonl"))


def test_the_writer_backs_off_while_down_and_replays_in_order(tmp_path: Path) -> None:
    db = FakeBackend()
    ledger = Ledger(db, db, tmp_path / "spool", retry_s=0.05, max_retry_s=0.2)
    ledger.record(rec(0))
    ledger.flush()
    db.down = True
    for i in range(1, 100):
        ledger.record(rec(i))
    ledger.flush()
    assert ledger.status()["state"] == "spooling"
    time.sleep(0.5)  # several failed retries; none of them may lose or duplicate anything
    db.down = False
    wait_settled(ledger, 10)
    ledger.close()
    assert sorted(db.rows) == sorted(f"r{i}" for i in range(100))


def test_a_dead_process_spool_is_replayed_by_the_next_start(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    spool = tmp_path / "spool"
    spool.mkdir()
    lines = "".join(to_line(rec(i)) + "\n" for i in range(5))
    (spool / f"active-{pid}.jsonl").write_text(lines + '{"ts": 1, "request_id": "torn"')  # crashed mid-write
    mine = spool / f"active-{os.getpid() + 1_000_000}.jsonl"  # no such process either
    mine.write_text(to_line(rec("x")) + "\n")
    db = FakeBackend()
    Ledger(db, db, spool).close()
    assert sorted(db.rows) == ["r0", "r1", "r2", "r3", "r4", "rx"]
    assert not list(spool.iterdir())


def test_a_live_process_spool_is_left_to_its_owner(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as alive:
        (spool / f"active-{alive.pid}.jsonl").write_text(to_line(rec("theirs")) + "\n")
        db = FakeBackend()
        Ledger(db, db, spool).close()
        alive.kill()
    assert db.rows == {}
    assert (spool / f"active-{alive.pid}.jsonl").exists()


def test_when_the_spool_disk_refuses_records_wait_in_memory(tmp_path: Path) -> None:
    db = FakeBackend()
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the spool folder should be")
    ledger = Ledger(db, db, blocker / "spool", retry_s=0.05)
    db.down = True
    for i in range(10):
        ledger.record(rec(i))
    ledger.flush()
    assert ledger.status()["spooled"] == 10
    db.down = False
    wait_settled(ledger, 10)
    ledger.close()
    assert len(db.rows) == 10


def _nice(tid: int) -> int:
    """A thread's nice value, field 19 of /proc/self/task/<tid>/stat (after the parenthesised name)."""
    stat = Path(f"/proc/self/task/{tid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])


def test_the_writer_thread_runs_below_the_serving_threads_priority(tmp_path: Path) -> None:
    """Its batch inserts must give way to the request path (gateway/ledger/writer.py: WRITER_NICE); the thread that
    serves keeps the process's priority."""
    led = Ledger(FakeBackend(), FakeBackend(), tmp_path)
    try:
        led.record(rec("r1"))
        led.flush()  # the writer has run, so it has set its own priority by now
        writer = led._thread.native_id
        assert writer is not None
        assert _nice(writer) == _nice(threading.get_native_id()) + WRITER_NICE
    finally:
        led.close()


def test_the_serving_thread_gives_way_once_the_writer_falls_behind(tmp_path: Path) -> None:
    """With one worker per core at full load the niced writer fell behind and the queue (and RSS) grew for as long
    as the load lasted. From `give_way_at` queued records on, each record() now sleeps GIVE_WAY_S, so the writer
    gets the core and the interpreter lock; below that, nothing waits."""
    db = FakeBackend()
    db.gate.clear()  # the writer takes one record (batch=1) and is held in its insert: the queue only grows
    slept: list[float] = []
    ledger = Ledger(db, db, tmp_path / "spool", batch=1, give_way_at=10, give_way=slept.append)
    try:
        for i in range(9):
            ledger.record(rec(i))
        assert slept == []
        for i in range(9, 30):
            ledger.record(rec(i))
        # The 10th or 11th record reaches 10 queued, depending on whether the writer took its one record yet.
        assert 20 <= len(slept) <= 21 and set(slept) == {GIVE_WAY_S}
    finally:
        db.gate.set()
        wait_settled(ledger, 10)
        ledger.close()
    assert sorted(db.rows) == sorted(f"r{i}" for i in range(30))


def test_nothing_gives_way_while_the_database_is_down(tmp_path: Path) -> None:
    """Down, records go to the spool as before: slowing the gateway would not bring the database back."""
    db = FakeBackend()
    db.down = True
    slept: list[float] = []
    ledger = Ledger(db, db, tmp_path / "spool", retry_s=0.05, give_way_at=1, give_way=slept.append)
    try:
        for i in range(50):
            ledger.record(rec(i))
        assert slept == []
    finally:
        db.down = False
        wait_settled(ledger, 10)
        ledger.close()
    assert len(db.rows) == 50


def test_a_record_the_database_refuses_is_set_aside_and_holds_nothing_back(tmp_path: Path) -> None:
    """A value a database cannot store failed its whole batch: lost on SQLite, and on PostgreSQL the writer took the
    database for down and spooled every later record, the bad one failing each replay. Now the rest of its batch is
    committed, it is set aside in the spool folder (never replayed), and the ledger stays up; the same in a replay."""
    db = FakeBackend()
    db.refuse = {"r2", "rs2"}
    ledger = Ledger(db, db, tmp_path / "spool", retry_s=0.05)
    for i in range(4):
        ledger.record(rec(i))
    ledger.flush()
    assert sorted(db.rows) == ["r0", "r1", "r3"] and ledger.status()["state"] == "up"
    # Spooled while the database was down, then replayed: the bad one is set aside again, the others go in.
    db.down = True
    for i in range(4):
        ledger.record(rec(f"s{i}"))  # request ids s0..s3
    ledger.flush()
    db.down = False
    wait_settled(ledger)
    assert sorted(db.rows) == ["r0", "r1", "r3", "rs0", "rs1", "rs3"]
    assert ledger.status()["rejected"] == 2
    ledger.close()
    (aside,) = (tmp_path / "spool").glob("rejected-*.jsonl")
    assert [line.split('"request_id":"')[1].split('"')[0] for line in aside.read_text().splitlines()] == ["r2", "rs2"]
