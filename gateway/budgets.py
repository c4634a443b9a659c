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
import math
import time
from collections.abc import Callable, Sequence

from gateway.alerts import BudgetWatch
from gateway.errors import QuotaExceeded
from gateway.ledger import LedgerRecord
from gateway.spend import Reader, ReadSpend, Spend
from router.policy import ModelSpec


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
        self._watch = watch  # alerts as spend crosses shares of a budget
        self._reader = Reader(read, refresh_s, clock, self._check if watch is not None else None)
        self._spend = {m.name: Spend(m.budget) for m in models if m.budget is not None}

    def _check(self, name: str, s: Spend) -> None:
        if self._watch is not None:
            self._watch.check("model", name, s.spent, s.budget)

    @property
    def active(self) -> bool:
        return bool(self._spend)

    async def spent(self) -> frozenset[str]:
        """The models over their budget now. Starts a background read of any budget older than `refresh_s`; waits
        only for one never read."""
        if not self._spend:
            return frozenset()
        first: list[asyncio.Task[None]] = []
        for name, s in self._spend.items():
            s.start_reading(name, self._reader)
            if s.read_at == -math.inf and s.reading is not None:
                first.append(s.reading)
        if first:
            await asyncio.shield(asyncio.gather(*first))
        return frozenset(name for name, s in self._spend.items() if s.over)

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
            self._check(rec.routed_model, s)
