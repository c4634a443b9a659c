"""The ledger writer: records leave the request path through a bounded queue and are committed in batches.

Never waits for the database, never loses: `record()` only enqueues (when the queue is full, the record goes to
the local spool instead). When the writer falls behind while the database is up, `record()` gives way for a moment
(below: GIVE_WAY_AT), so that the queue stays short instead of filling memory. A writer thread commits batches;
when the database fails, batches go to the spool and the thread retries with backoff, replaying the spool once the
database answers. `close()` drains the queue, so a clean shutdown loses nothing; what is still spooled then is
replayed by the next start.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gateway.ledger import feedback, retention
from gateway.ledger.backends import Backend, LedgerRejected, LedgerUnavailable
from gateway.ledger.journal import Journal
from gateway.ledger.record import COLUMNS, LedgerRecord, from_row
from gateway.ledger.spool import Spool

log = logging.getLogger("tiergate.ledger")

# How much lower than the serving thread the writer runs (Linux nice, per thread). Its batch inserts are milliseconds
# of CPU; at the same priority they took a core the request path's next hop (the loop, the upstream, the client) was
# about to need, and at concurrency 1 one request in a hundred waited for them: p99 2.1-2.5 ms against 1.5-1.7
# niced, and 6,594 against 7,312 req/s at 64 (docs/benchmarks.md). With one worker it keeps up at full load (the
# queue peaked at ~480 records), and with nothing else to run it gets the whole core.
WRITER_NICE = 10
# With one worker per core (the default) at full load, no core is left over: the niced writer fell behind, its
# queue grew by ~2,500 records a second (31,000 after a 10 s run of cache hits at 10,000 req/s on 2 cores), and each
# worker's RSS grew with it (+54 MB at 31,000 records, with the bound at 50,000; issue 6 allows 350 MB in all, and
# bench.gateways measured 349 and 370). So from this many queued records on, while the database is up, each
# record() sleeps GIVE_WAY_S on the serving thread: that frees the core and the interpreter lock for the writer, and
# the gateway serves only as fast as it can record, which is the real rate. Measured (docs/benchmarks.md): the queue
# then peaked at 2,052 and RSS at 259 MB. A time.sleep, not an await, on purpose: record() is called from
# synchronous code, and it is the whole thread that must give way. At lower load the queue never gets near this,
# and nothing waits.
GIVE_WAY_AT = 2048
GIVE_WAY_S = 0.0005
# How long the writer lets a batch gather once a record waits (while fewer than a batch's worth do): one wake-up a
# batch, not one a request. It was 50 ms: at a few thousand requests a second each batch then came as ~250 records
# at once, whose rows the writer builds and binds holding the interpreter lock, beside a SQLite commit taking a core
# for ~2.5 ms, and a request that met one waited for it. At concurrency 1 (one worker, side by side with the
# 50 ms build): p99 of a cache hit 0.53-1.06 ms against 1.63-2.17, of a miss 0.89-1.46 against 1.65-2.08 (0.21-0.34
# with recording off). The price: batches up to ten times as often, so more requests meet a small one: a miss's p90
# ~95 us higher (medians 449 and 355 us), its p50 ~20 (308 and 288); a hit's p50 and p90 unchanged
# (docs/benchmarks.md). Throughput at 64 with two workers, where the writer is busiest, was unchanged.
LINGER_S = 0.005


def _lower_priority() -> None:
    """Called by the writer thread itself. Where threads have no nice of their own (not Linux), nothing changes."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0) + WRITER_NICE)
    except (OSError, AttributeError) as e:
        log.debug("ledger writer keeps the process's priority: %s", e)


class Ledger:
    def __init__(
        self,
        backend: Backend,
        reader: Backend,
        spool_dir: Path,
        batch: int = 256,
        max_queue: int = 50_000,
        retry_s: float = 0.5,
        max_retry_s: float = 10.0,
        linger_s: float = LINGER_S,
        give_way_at: int = GIVE_WAY_AT,
        give_way: Callable[[float], None] = time.sleep,  # a seam for tests
    ) -> None:
        self.backend = backend
        self.reader = reader  # its own connection: dashboards read while the writer writes
        self.spool = Spool(spool_dir)
        self._batch = batch
        self._linger = linger_s
        self._max_queue = max_queue
        self._give_way_at, self._give_way = give_way_at, give_way
        self._buf: deque[LedgerRecord] = deque()
        self._accepted = 0  # records record() has queued
        self._count_lock = threading.Lock()
        self._handled = 0  # records the writer has committed or spooled
        self._done = threading.Condition()
        self._wake = threading.Event()
        self._stopping = False
        self._urgent = False
        self._retry_s, self._max_retry_s = retry_s, max_retry_s
        self._backoff = retry_s
        self._retry_at = 0.0
        self._up = False  # set by the first successful migrate + replay
        self._last_error: str | None = None
        self._stranded: list[LedgerRecord] = []  # neither the database nor the spool took them; retried
        self.journal = Journal(spool_dir)  # before the first replay, which takes the journals of processes gone
        self._recover()  # migrate now, so a broken URL shows at start-up (and the schema exists for readers)
        self._thread = threading.Thread(target=self._run, name="tiergate-ledger", daemon=True)
        self._thread.start()

    # -- request path ----------------------------------------------------------------------------------------
    def record(self, rec: LedgerRecord) -> None:
        # A deque append and a counter: about a microsecond, where queue.Queue's condition variables cost ~10.
        if len(self._buf) >= self._max_queue:
            log.warning("ledger queue full; spooling the record")
            self._to_spool([rec])
            return
        with self._count_lock:  # contended only by the writer's rotate, once a batch
            self.journal.append(rec, self._accepted)  # a memory copy; outlives this process (ledger/journal.py)
            self._buf.append(rec)
            self._accepted += 1
        if not self._wake.is_set():
            self._wake.set()
        if len(self._buf) >= self._give_way_at and self._up:  # the writer is starved, not the database down
            self._give_way(GIVE_WAY_S)

    # -- writer thread ---------------------------------------------------------------------------------------
    def _run(self) -> None:
        _lower_priority()
        while True:
            stopping = self._stopping
            if not self._buf and not stopping:
                self._wake.wait(max(0.0, self._retry_at - time.monotonic()) if self._behind() else None)
                self._wake.clear()
                if self._buf and self._linger and len(self._buf) < self._batch and not (self._stopping or self._urgent):
                    # Let a batch gather: one wake-up per batch, not per request, keeps this thread from
                    # contending with the event loop for the interpreter lock on every request.
                    time.sleep(self._linger)
            if self._buf:
                self.journal.prepare()
                with self._count_lock:
                    self.journal.rotate(self._accepted)  # the records this batch and the ones before may take
            batch: list[LedgerRecord] = []
            while self._buf and len(batch) < self._batch:
                batch.append(self._buf.popleft())
            try:
                if batch:
                    self._deliver(batch)
                if self._behind() and (stopping or time.monotonic() >= self._retry_at):
                    self._recover()
            except Exception:  # the thread must outlive any surprise, or records would pile up unseen
                log.exception("ledger writer error")
            finally:
                if batch:
                    with self._done:
                        self._handled += len(batch)
                        if not self._stranded:  # stranded records stay journalled until they are in
                            self.journal.release(self._handled)  # before waiters wake: flush() means "released"
                        self._done.notify_all()
            if not self._buf:
                self._urgent = False
            if stopping and not self._buf:
                return

    def _behind(self) -> bool:
        """Down, or records are waiting outside the database (spooled when the queue overflowed)."""
        return not self._up or self.spool.pending > 0 or bool(self._stranded)

    def _insert(self, recs: Sequence[LedgerRecord]) -> None:
        """Insert `recs`; when the database refuses them as such, record by record, and the ones it refuses alone are
        set aside (Spool.reject): one bad record (a value a database cannot store) must not fail the rest of its
        batch, nor, replayed from the spool, every replay after it. Raises LedgerUnavailable."""
        try:
            self.backend.insert(recs)
        except LedgerRejected as e:
            if len(recs) > 1:
                for r in recs:
                    self._insert([r])
                return
            try:
                self.spool.reject(recs, str(e))
            except OSError:
                log.exception("ledger spool refused a record the database refused too; keeping it in memory")
                self._stranded.extend(recs)

    def _deliver(self, batch: Sequence[LedgerRecord]) -> None:
        if self._up:
            try:
                self._insert(batch)
                return
            except LedgerUnavailable as e:
                self._went_down(e)
        self._to_spool(batch)

    def _went_down(self, e: LedgerUnavailable) -> None:
        log.error("ledger database unavailable, spooling records locally until it returns: %s", e)
        self._up = False
        self._last_error = str(e)
        self._backoff = self._retry_s
        self._retry_at = time.monotonic() + self._backoff

    def _to_spool(self, batch: Sequence[LedgerRecord]) -> None:
        try:
            self.spool.append(batch)
        except OSError:
            log.exception("ledger spool refused %d records; keeping them in memory", len(batch))
            self._stranded.extend(batch)

    def _recover(self) -> None:
        """Migrate, replay the spool and anything stranded; on success the ledger is up again."""
        try:
            self.backend.migrate()
            self.spool.replay(self._insert)
            if self._stranded:
                stranded, self._stranded = self._stranded, []
                try:
                    self._insert(stranded)  # may strand again one the database refuses and the disk too
                except BaseException:
                    self._stranded = stranded  # all of them, those it stranded again included: nothing twice
                    raise
        except LedgerUnavailable as e:
            if self._up or self._last_error is None:
                log.error("ledger database unavailable: %s", e)
            self._up = False
            self._last_error = str(e)
            self._retry_at = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, self._max_retry_s)
            return
        if not self._up and self._last_error is not None:
            log.info("ledger database is back; spool replayed")
        self._up, self._last_error, self._backoff = True, None, self._retry_s

    # -- control ---------------------------------------------------------------------------------------------
    def alive(self) -> bool:
        return self._thread.is_alive()

    def status(self) -> dict[str, Any]:
        return {
            "backend": self.backend.dialect,
            "where": self.backend.where,
            "state": "up" if self._up else "spooling",
            "queued": len(self._buf),
            "spooled": self.spool.pending + len(self._stranded),
            "rejected": self.spool.rejected,
            "error": self._last_error,
        }

    def flush(self) -> None:
        """Block until every record enqueued so far is committed or spooled."""
        target = self._accepted
        self._urgent = True  # someone waits: commit now instead of letting a batch gather
        self._wake.set()
        with self._done:
            self._done.wait_for(lambda: self._handled >= target or not self._thread.is_alive())

    def settled(self) -> bool:
        """Everything recorded so far is in the database (nothing queued, spooled or stranded)."""
        idle = self._handled >= self._accepted and not self._buf
        return self._up and idle and self.spool.pending == 0 and not self._stranded

    def close(self) -> None:
        """Commit everything queued (or spool it), then stop the writer. Safe to call twice."""
        if self._thread.is_alive():
            self._stopping = True
            self._wake.set()
            self._thread.join()
            if not self._stranded:  # else the journal keeps them for the next process (its lock goes with this one)
                self.journal.close()
        self.backend.close()
        self.reader.close()

    def add_feedback(self, request_id: str, score: float, key_id: str | None) -> int:
        """A client's judgement, stored before this returns (on the reading connection: it is one small write, and
        unlike request records it has no spool, so the caller must learn at once whether it was kept)."""
        return feedback.add(self.reader, request_id, score, key_id)

    def prune(self, before: float) -> int:
        """Delete the records from before `before` (epoch seconds) that nothing needs any more, on the reading
        connection in short batches (gateway/ledger/retention.py); returns how many went. Blocks: call it off the
        event loop."""
        return retention.prune(self.reader, before)

    # -- reading ---------------------------------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.reader.query(sql, params)

    def rows(self, where: str = "1=1", params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Whole records (tests, exports), oldest first, after committing what is queued."""
        self.flush()
        return [
            from_row(r)
            for r in self.query(f"SELECT {','.join(COLUMNS)} FROM requests WHERE {where} ORDER BY id", params)
        ]
