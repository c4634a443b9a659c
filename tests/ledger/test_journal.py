"""gateway/ledger/journal.py: records a process accepted survive its being killed before the writer commits them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gateway.ledger import journal, open_ledger
from gateway.ledger.journal import Journal, orphaned
from gateway.ledger.spool import Spool
from gateway.ledger.writer import Ledger
from tests.ledger.test_backends import rec, wait_settled
from tests.ledger.test_writer import FakeBackend

# A worker that accepts 300 records and is SIGKILLed before its writer commits them: its batch waits for company
# (a 60 s linger) and is held at the database besides.
KILLED = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path
    from gateway.ledger import LedgerRecord
    from gateway.ledger.backends import make_backend
    from gateway.ledger.writer import Ledger
    db = Path(sys.argv[1])
    ledger = Ledger(make_backend(str(db)), make_backend(str(db)), Path(sys.argv[2]), batch=10_000, linger_s=60)
    for i in range(300):
        ledger.record(LedgerRecord(ts=time.time(), request_id=f"k{i}", policy="p", requested_model="m"))
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_records_of_a_killed_process_are_committed_by_the_next_one(tmp_path: Path) -> None:
    db, spool = tmp_path / "ledger.sqlite3", tmp_path / "spool"
    killed = subprocess.run([sys.executable, "-c", KILLED, str(db), str(spool)], capture_output=True, timeout=120)
    assert killed.returncode == -9, killed.stderr.decode()
    before = open_ledger(db, tmp_path / "other-spool")  # the same database, without the dead one's journal
    assert before.rows() == []  # nothing was committed before the kill
    before.close()
    after = open_ledger(db, spool)  # the next process: its start replays what the dead one journalled
    wait_settled(after)
    assert sorted(r["request_id"] for r in after.rows()) == sorted(f"k{i}" for i in range(300))
    after.close()
    assert not list(spool.glob("*"))  # replayed, then swept: segments and the dead one's lock


def test_segments_go_once_their_records_are_in_and_a_clean_close_leaves_nothing(tmp_path: Path) -> None:
    db = FakeBackend()
    ledger = Ledger(db, db, tmp_path, batch=50, linger_s=0)
    for i in range(1000):
        ledger.record(rec(i))
    ledger.flush()
    assert len(db.rows) == 1000
    for i in range(1000, 1010):
        ledger.record(rec(i))
    ledger.flush()
    # Committed records are cleared from the segments (kept for reuse, at most a few); none holds one any more.
    segments = list(tmp_path.glob("journal-*.jsonl"))
    assert 1 <= len(segments) <= 6
    assert not any(p.read_bytes().strip(b"\0") for p in segments)
    ledger.close()
    assert not list(tmp_path.glob("*"))


def test_only_the_journal_of_a_process_that_is_gone_is_claimed(tmp_path: Path) -> None:
    live, gone = Journal(tmp_path), Journal(tmp_path)
    for j in (live, gone):
        j.append(rec(j.token), 0)
    assert not list(orphaned(tmp_path))  # both owners hold their locks
    os.close(gone._lock_fd)  # its process dies: the kernel closes its files, which drops its lock
    assert [p.name for p in orphaned(tmp_path)] == [f"journal-{gone.token}-1.jsonl"]
    live.close()


def test_a_folder_that_cannot_hold_a_journal_leaves_the_ledger_working(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    db = FakeBackend()
    ledger = Ledger(db, db, blocker / "spool", linger_s=0)
    assert not ledger.journal.on
    ledger.record(rec(1))
    ledger.flush()
    assert list(db.rows) == ["r1"]
    ledger.close()


def test_a_burst_past_a_segment_goes_on_in_new_ones_and_every_record_replays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal, "SEGMENT_BYTES", 4096)  # a few records a segment
    gone = Journal(tmp_path)
    for i in range(100):
        gone.append(rec(i, prompt="x" * (5000 if i == 50 else 10)), i)  # one record larger than a segment
    with (tmp_path / f"journal-{gone.token}-99.jsonl").open("wb") as torn:  # killed mid-copy: no newline
        torn.write(b'{"ts": 1.0, "request_id": "torn"' + bytes(100))
    os.close(gone._lock_fd)  # the process dies
    got: list[str] = []
    Spool(tmp_path).replay(lambda recs: got.extend(r.request_id for r in recs))
    assert sorted(got) == sorted(f"r{i}" for i in range(100))  # the torn one is skipped, with a warning
    assert not list(tmp_path.glob("*"))
