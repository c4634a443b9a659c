"""A local append-only spool for ledger records the database could not take, replayed when it is back.

Each process appends to its own file (`active-<pid>.jsonl`, one JSON record per line, flushed and fsynced per
batch). To replay, the active file is sealed (renamed to `sealed-...`), so appends carry on in a fresh file; sealed
files, the active files of processes that died and their journal segments (gateway/ledger/journal.py) are claimed by
an atomic rename, so with several workers sharing one folder each file is replayed by exactly one of them. Replay
inserts with "on conflict do nothing", so a crash half-way through a replay repeats nothing.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from gateway.ledger import journal
from gateway.ledger.record import LedgerRecord, from_line, to_line

log = logging.getLogger("tiergate.ledger")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Spool:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._active = folder / f"active-{os.getpid()}.jsonl"
        self._pending = 0  # records this process appended and has not replayed yet
        self._sealed = 0  # of those, the ones in files sealed for a replay that has not finished
        self.rejected = 0  # records this process set aside because the database refused them (`reject`)

    def _write(self, path: Path, recs: Sequence[LedgerRecord]) -> None:
        """Durably append records to `path`, under the lock (raises OSError if the disk refuses)."""
        data = "".join(to_line(r) + "\n" for r in recs).encode()
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def append(self, recs: Sequence[LedgerRecord]) -> None:
        """Durably append records (raises OSError if the disk refuses)."""
        with self._lock:
            self._write(self._active, recs)
            self._pending += len(recs)

    def reject(self, recs: Sequence[LedgerRecord], why: str) -> None:
        """Set aside records the database refuses (`rejected-<pid>.jsonl`, never replayed): kept for a look and a
        fix, not retried, so they hold nothing back. Raises OSError if the disk refuses."""
        with self._lock:
            self._write(self.folder / f"rejected-{os.getpid()}.jsonl", recs)
            self.rejected += len(recs)
        ids = ", ".join(r.request_id for r in recs)
        log.error("ledger database refused record(s) %s, set aside in %s: %s", ids, self.folder, why)

    @property
    def pending(self) -> int:
        return self._pending + self._sealed

    def has_work(self) -> bool:
        if self._pending:
            return True
        return self.folder.is_dir() and any(self._claimable())

    def _seal_own(self) -> None:
        with self._lock:
            if self._active.exists():
                self._active.rename(self.folder / f"sealed-{os.getpid()}-{time.time_ns()}.jsonl")
                self._sealed += self._pending
                self._pending = 0

    def _claimable(self) -> Iterator[Path]:
        for p in sorted(self.folder.glob("*.jsonl")):
            if p.name.startswith("sealed-"):
                yield p
            elif p.name.startswith("active-") and p != self._active:
                pid = p.stem.removeprefix("active-")
                if pid.isascii() and pid.isdigit() and not _pid_alive(int(pid)):
                    yield p  # left by a process that died before replaying it
        yield from journal.orphaned(self.folder)  # the journal of a process that died (gateway/ledger/journal.py)

    def replay(self, insert: Callable[[Sequence[LedgerRecord]], None], chunk: int = 1000) -> int:
        """Insert every spooled record; a file is deleted only after all of it is committed. Returns the count.

        An exception from `insert` propagates; the file being replayed is handed back for a later attempt.
        """
        if not self.folder.is_dir():
            return 0
        self._seal_own()
        done = 0
        for path in list(self._claimable()):
            claimed = path.with_name(f"claimed-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl.part")
            try:
                path.rename(claimed)
            except FileNotFoundError:
                continue  # another worker claimed it first
            try:
                n = self._replay_file(claimed, insert, chunk)
            except BaseException:
                claimed.rename(self.folder / f"sealed-{os.getpid()}-{time.time_ns()}.jsonl")
                raise
            claimed.unlink()
            done += n
            log.info("replayed %d spooled ledger records from %s", n, path.name)
        with self._lock:
            self._sealed = 0
        journal.sweep(self.folder)
        return done

    @staticmethod
    def _replay_file(path: Path, insert: Callable[[Sequence[LedgerRecord]], None], chunk: int) -> int:
        batch: list[LedgerRecord] = []
        n = 0
        with path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if line.startswith("\0"):
                    break  # a journal segment's unused, zero-filled tail (gateway/ledger/journal.py)
                if not line.endswith("\n"):
                    # A torn last line from a crash mid-write: its batch was never acknowledged as spooled.
                    log.warning("%s:%d: incomplete spool line skipped", path.name, lineno)
                    continue
                batch.append(from_line(line))
                if len(batch) >= chunk:
                    insert(batch)
                    n += len(batch)
                    batch = []
        if batch:
            insert(batch)
            n += len(batch)
        return n
