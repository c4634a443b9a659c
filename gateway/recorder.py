"""Where a finished request's record goes: the ledger and the live metrics, in one call."""

from __future__ import annotations

from typing import Protocol

from gateway.ledger import LedgerRecord


class Sink(Protocol):
    def record(self, rec: LedgerRecord) -> None: ...


class Recorder:
    def __init__(self, *sinks: Sink) -> None:
        self._sinks = sinks

    def record(self, rec: LedgerRecord) -> None:
        for s in self._sinks:
            s.record(rec)
