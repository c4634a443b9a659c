"""Spend per model against its budget (`models[].budget`): which models are spent for now.

A hosted frontier model can quietly take a bill past what its tier is worth. With a budget, once the model's
answers have cost `usd` within the trailing `per`, routing passes it over (the next cheapest adequate model, or with
`best_effort` the strongest weaker ones, marked degraded) and a request naming it gets a 429 `insufficient_quota`,
until older spend leaves the window.

Counted as key budgets are (gateway/limits.py): from the ledger, one indexed query per budgeted model at most once
per `refresh_s`, plus what this worker records in between, so every worker and every gateway on one ledger database
holds one budget. Soft in the same way: requests in flight when the budget runs out are served and costed. If the
ledger cannot be read, the last reading stands (a budget must not take the gateway down with its database). What an
escalated cascade draft cost counts under the model that answered, as the ledger books it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from gateway.alerts import BudgetWatch
from gateway.errors import QuotaExceeded
from gateway.ledger import LedgerRecord
from router.policy import Budget, ModelSpec

log = logging.getLogger("tiergate.budgets")

# (model, since) -> its answers' cost since then, called in a thread: gateway/ledger/stats.py's model_spend.
ReadSpend = Callable[[str, float], float]


@dataclass
class _Spend:
    budget: Budget
    read_at: float = -math.inf  # never read: the first routed request waits for the ledger
    ledger: float = 0.0
    since_read: float = 0.0  # what this worker recorded after the read
    reading: asyncio.Task[None] | None = None

    @property
    def spent(self) -> float:
        return self.ledger + self.since_read


class ModelBudgets:
    """Which budgeted models are spent; a recorder sink (gateway/recorder.py) too."""

    def __init__(
        self,
        models: Sequence[ModelSpec],
        read: ReadSpend,
        refresh_s: float = 1.0,
        clock: Callable[[], float] = time.time,
        watch: BudgetWatch | None = None,
    ) -> None:
        self._read, self._refresh_s, self._clock = read, refresh_s, clock
        self._watch = watch  # alerts as spend crosses shares of a budget
        self._spend = {m.name: _Spend(m.budget) for m in models if m.budget is not None}

    @property
    def active(self) -> bool:
        return bool(self._spend)

    async def spent(self) -> frozenset[str]:
        """The models over their budget now. Starts a background read of any budget older than `refresh_s`; waits
        only for one never read."""
        if not self._spend:
            return frozenset()
        now = self._clock()
        first: list[asyncio.Task[None]] = []
        for name, s in self._spend.items():
            if s.reading is None and now - s.read_at >= self._refresh_s:
                s.reading = asyncio.create_task(self._refresh(name, s))
            if s.read_at == -math.inf and s.reading is not None:
                first.append(s.reading)
        if first:
            await asyncio.shield(asyncio.gather(*first))
        return frozenset(name for name, s in self._spend.items() if s.spent >= s.budget.usd)

    def refusal(self, model: str) -> QuotaExceeded:
        s = self._spend[model]
        return QuotaExceeded(
            f"The model '{model}' has spent its budget: ${s.spent:.4f} of ${s.budget.usd:g} in the last"
            f" {s.budget.per}. It is served again as older spend leaves that window."
        )

    def status(self) -> dict[str, dict[str, float | str]]:
        """Each budgeted model's spend in its window as last counted, for /v1/models."""
        return {
            name: {"usd": s.budget.usd, "per": s.budget.per, "spent_usd": s.spent} for name, s in self._spend.items()
        }

    def record(self, rec: LedgerRecord) -> None:
        """Sink for every finished request's record: what its model's answer cost counts from now on."""
        if rec.routed_model is not None and (s := self._spend.get(rec.routed_model)) is not None:
            s.since_read += rec.cost_usd
            if self._watch is not None:
                self._watch.check("model", rec.routed_model, s.spent, s.budget)

    async def _refresh(self, name: str, s: _Spend) -> None:
        started = self._clock()
        try:
            spent = await run_in_threadpool(self._read, name, started - s.budget.per_s)
        except Exception as e:  # fail open: the last reading stands (module docstring)
            log.warning("could not read the ledger for model %s's budget: %s", name, e)
            if s.read_at == -math.inf:
                s.read_at = started  # retried after refresh_s, not on every request
            return
        finally:
            s.reading = None
        # A record this worker made just before the read may not be committed yet: it is missed until the next
        # read, at most refresh_s later (soft, as the module docstring says).
        s.read_at, s.ledger, s.since_read = started, spent, 0.0
        if self._watch is not None:  # spend by other workers and gateways on the ledger counts too
            self._watch.check("model", name, s.spent, s.budget)
