"""A write-ahead journal of accepted ledger records, so that a process killed without warning loses none of them.

The writer thread commits records in batches, a few milliseconds after the request path accepted them
(gateway/ledger/writer.py); a process killed meanwhile (SIGKILL, the OOM killer) took those records with it. So
`append` also copies each record, as a spool line, into this process's current journal segment: a file of 1 MiB,
allocated on disk beforehand and mapped into memory, so an append is a memory copy (~1 us with the encoding), no
system call. A write(2) per record was tried first: it let the writer thread take the interpreter lock on every
request and cost a cache hit ~10 us (36 -> 46 us in process), while the writer fell behind. The kernel writes a
mapped file's pages to the file whether or not the process lives, so the records outlive the process (not the
machine: there is no fsync). Before each batch the writer closes the current segment (`rotate`) and deletes closed
segments once every record in them is committed or spooled (`release`); a clean close deletes the rest. Segments
are made by the writer thread ahead of need (`prepare`), so the request path makes one only when a burst fills a
segment between two batches.

The segments of a process that died are claimed by the next process to replay the spool (gateway/ledger/spool.py),
whose inserts skip request ids already in the ledger; a segment's unused tail is zeros, where its replay stops. A
segment's owner is known by a lock, not a pid: each process holds an exclusive flock on its own lock file for its
whole life, and the kernel drops it when the process dies, however it dies. A pid would not do: a restarted
container often gets the same one.
"""

from __future__ import annotations

import fcntl
import logging
import mmap
import os
import uuid
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import orjson

from gateway.ledger.record import LedgerRecord

log = logging.getLogger("tiergate.ledger")

SEGMENT_BYTES = 1 << 20  # ~1,500 records of ~700 bytes; a larger record gets a segment of its own size
_KEEP_FREE = 4  # released segments kept for reuse


class _Segment:
    """A zero-filled file of `size` bytes with its blocks allocated (so a write to the mapping cannot fail for want
    of space, which would be a SIGBUS), mapped shared."""

    def __init__(self, path: Path, size: int) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.posix_fallocate(fd, 0, size)
            self.map = mmap.mmap(fd, size)
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        os.close(fd)  # the mapping keeps the file open
        self.path, self.size, self.pos = path, size, 0

    def write(self, line: bytes) -> None:
        self.map[self.pos : self.pos + len(line)] = line
        self.pos += len(line)

    def clear(self) -> None:
        """Zero what was written, for reuse: its pages stay mapped and writable, so the next appends take no page
        fault."""
        self.map[: self.pos] = bytes(self.pos)
        self.pos = 0

    def drop(self) -> None:
        self.map.close()
        self.path.unlink(missing_ok=True)


class Journal:
    def __init__(self, folder: Path) -> None:
        """Opened at once; a folder that cannot be made or written leaves the journal off (logged), not the ledger."""
        self.folder = folder
        self.token = uuid.uuid4().hex[:12]
        self._seq = 0
        self._closed: deque[tuple[_Segment, int]] = deque()  # (segment, records accepted when it was closed)
        self._seg: _Segment | None = None  # the current segment; None: the journal is off
        self._spare: _Segment | None = None  # the next one, made by the writer thread
        self._free: list[_Segment] = []  # released segments, cleared for reuse (the writer thread's)
        self._lock_fd = -1
        try:
            folder.mkdir(parents=True, exist_ok=True)
            # Locked before it is given its name (an atomic rename), so no other process ever sees it unlocked while
            # this one lives.
            making = folder / f"making-{self.token}.lock"
            self._lock_fd = os.open(making, os.O_WRONLY | os.O_CREAT, 0o600)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)  # held until this process ends
            making.rename(folder / f"journal-{self.token}.lock")
            self._seg = self._new(SEGMENT_BYTES)
        except OSError as e:
            self._off(e)

    @property
    def on(self) -> bool:
        return self._seg is not None

    def _off(self, e: OSError) -> None:
        self._seg = None
        log.error("ledger journal off (%s): records not yet committed are lost if the process is killed", e)

    def _new(self, size: int) -> _Segment:
        self._seq += 1
        return _Segment(self.folder / f"journal-{self.token}-{self._seq}.jsonl", size)

    def append(self, rec: LedgerRecord, accepted: int) -> None:
        """Under the ledger's count lock, before the record is counted: `accepted` records came before it."""
        if self._seg is None:
            return
        try:
            line = orjson.dumps(rec) + b"\n"
        except TypeError as e:  # a value orjson cannot write: the record still goes to the ledger, unjournalled
            log.warning("ledger journal: record %s not journalled: %s", rec.request_id, e)
            return
        if self._seg.pos + len(line) > self._seg.size:  # full before the writer's next rotate: a burst
            try:
                fresh = self._new(max(SEGMENT_BYTES, len(line)))
            except OSError as e:
                self._off(e)
                return
            self._closed.append((self._seg, accepted))
            self._seg = fresh
        self._seg.write(line)

    def prepare(self) -> None:
        """The writer thread, outside the count lock: have the next segment ready."""
        if self._seg is not None and self._spare is None:
            if self._free:
                self._spare = self._free.pop()
                return
            try:
                self._spare = self._new(SEGMENT_BYTES)
            except OSError as e:
                log.warning("ledger journal: no spare segment yet (%s)", e)

    def rotate(self, accepted: int) -> None:
        """The writer thread, under the count lock: close the current segment, which holds the records up to number
        `accepted`, and go on in the spare."""
        if self._seg is None or self._seg.pos == 0 or self._spare is None:
            return
        self._closed.append((self._seg, accepted))
        self._seg, self._spare = self._spare, None

    def release(self, handled: int) -> None:
        """Clear the closed segments all of whose records are committed or spooled (the first `handled`) for reuse,
        or delete them beyond a few spare (an odd-sized one always). Reused, a segment costs no file, mapping or page
        fault: made and unmapped each batch, they cost a cache hit ~15-20 us on the wire at p50 (the mapping calls and
        the faults of fresh pages contend with the request path), though ~1 us in process."""
        while self._closed and self._closed[0][1] <= handled:
            seg = self._closed.popleft()[0]
            if seg.size == SEGMENT_BYTES and len(self._free) < _KEEP_FREE:
                seg.clear()
                self._free.append(seg)
                continue
            try:
                seg.drop()
            except OSError as e:  # never the writer thread's end: a segment left over is replayed, harmlessly
                log.warning("ledger journal: could not delete %s: %s", seg.path, e)

    def close(self) -> None:
        """Once every record is committed or spooled: delete every segment and give up the lock."""
        for seg in [s for s, _ in self._closed] + [s for s in (self._seg, self._spare) if s is not None] + self._free:
            seg.drop()
        self._closed.clear()
        self._free.clear()
        self._seg = self._spare = None
        if self._lock_fd >= 0:
            (self.folder / f"journal-{self.token}.lock").unlink(missing_ok=True)
            os.close(self._lock_fd)
            self._lock_fd = -1


def orphaned(folder: Path) -> Iterator[Path]:
    """Journal segments whose process is gone: its lock file can be locked (or is gone with it)."""
    tokens: dict[str, bool] = {}
    for seg in sorted(folder.glob("journal-*-*.jsonl")):
        token = seg.name.split("-")[1]
        if token not in tokens:
            tokens[token] = _unowned(folder / f"journal-{token}.lock")
        if tokens[token]:
            yield seg


def sweep(folder: Path) -> None:
    """Delete the lock files of processes that are gone and left no segment."""
    for lock in folder.glob("journal-*.lock"):
        token = lock.name.removeprefix("journal-").removesuffix(".lock")
        if not any(folder.glob(f"journal-{token}-*.jsonl")) and _unowned(lock):
            lock.unlink(missing_ok=True)


def _unowned(lock: Path) -> bool:
    try:
        fd = os.open(lock, os.O_WRONLY)
    except FileNotFoundError:
        return True  # closed cleanly but for a segment it left, or never locked
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # a live process holds it
    finally:
        os.close(fd)  # also drops the lock just taken
    return True
