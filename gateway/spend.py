"""One subject's spend in its budget's trailing window, counted as every budget in Tiergate is: from the ledger (one
indexed query, at most once per `refresh_s`, in a thread) plus what this worker has recorded since. Shared by model
budgets (gateway/budgets.py) and end-user budgets (gateway/end_users.py).

If the ledger cannot be read, the last reading stands (a budget must not take the gateway down with its database).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from router.policy import Budget

log = logging.getLogger("tiergate.budgets")

# (subject, since) -> what it cost since then; called in a thread (gateway/ledger/stats.py).
ReadSpend = Callable[[str, float], float]


@dataclass
class Spend:
    budget: Budget
    read_at: float = -math.inf  # never read: the first request that asks waits for the ledger
    ledger: float = 0.0
    since_read: float = 0.0  # what this worker recorded after the read
    reading: asyncio.Task[None] | None = None

    @property
    def spent(self) -> float:
        return self.ledger + self.since_read

    @property
    def over(self) -> bool:
        return self.spent >= self.budget.usd

    def start_reading(self, subject: str, reader: Reader) -> None:
        """Start a background read if the last one is older than the reader's `refresh_s` (and none is running)."""
        if self.reading is None and reader.clock() - self.read_at >= reader.refresh_s:
            self.reading = asyncio.create_task(self._refresh(subject, reader))

    async def current(self, subject: str, reader: Reader) -> None:
        """Fresh enough to judge by: starts a read when due; waits only when there has never been one."""
        self.start_reading(subject, reader)
        if self.read_at == -math.inf and self.reading is not None:
            await asyncio.shield(self.reading)  # shielded: one caller's cancellation is not everyone's

    async def _refresh(self, subject: str, reader: Reader) -> None:
        read, clock = reader.read, reader.clock
        started = clock()
        try:
            spent = await run_in_threadpool(read, subject, started - self.budget.per_s)
        except Exception as e:  # fail open: the last reading stands (module docstring)
            log.warning("could not read the ledger for %s's budget: %s", subject, e)
            if self.read_at == -math.inf:
                self.read_at = started  # retried after refresh_s, not on every request
            return
        finally:
            self.reading = None
        # A record this worker made just before the read may not be committed yet: it is missed until the next
        # read, at most refresh_s later (budgets are soft).
        self.read_at, self.ledger, self.since_read = started, spent, 0.0
        if reader.on_read is not None:  # e.g. alerts: spend by other workers and gateways counts too
            reader.on_read(subject, self)


@dataclass(frozen=True)
class Reader:
    """How a family of budgets reads the ledger: the query, how often, the clock, and what to do after a read."""

    read: ReadSpend
    refresh_s: float = 1.0
    clock: Callable[[], float] = time.time
    on_read: Callable[[str, Spend], None] | None = None
