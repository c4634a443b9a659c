"""Model budgets with a fake ledger and clock: the first reading is waited for, later ones are not, this worker's
records count until the next reading, and a ledger that cannot be read leaves the last reading standing."""

from __future__ import annotations

import asyncio

import pytest

from gateway.budgets import ModelBudgets
from gateway.ledger import LedgerRecord
from router.policy import ModelSpec


class Ledger:
    def __init__(self) -> None:
        self.spent: dict[str, float] = {}
        self.reads: list[tuple[str, float]] = []
        self.down = False

    def __call__(self, model: str, since: float) -> float:
        if self.down:
            raise RuntimeError("database is down")
        self.reads.append((model, since))
        return self.spent.get(model, 0.0)


class Clock:
    t = 10_000.0

    def __call__(self) -> float:
        return self.t


def _models() -> list[ModelSpec]:
    big = {"name": "big", "litellm_model": "openai/big", "tier": 2, "budget": {"usd": 1.0, "per": "1h"}}
    free = {"name": "small", "litellm_model": "openai/small", "tier": 0}
    return [ModelSpec.model_validate(big), ModelSpec.model_validate(free)]


def rec(model: str, cost: float) -> LedgerRecord:
    return LedgerRecord(ts=0, request_id="r", policy="p", requested_model="auto", routed_model=model, cost_usd=cost)


async def _reading_done(b: ModelBudgets) -> None:
    for _ in range(500):
        if all(s.reading is None for s in b._spend.values()):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the reading did not finish")


async def test_a_model_is_spent_once_its_window_holds_its_budget() -> None:
    ledger, clock = Ledger(), Clock()
    ledger.spent["big"] = 0.9
    b = ModelBudgets(_models(), ledger, clock=clock)
    assert b.active
    assert await b.spent() == frozenset()  # waited for the first reading
    assert ledger.reads == [("big", clock.t - 3600)]  # the budget's own window, only budgeted models
    b.record(rec("big", 0.05))
    b.record(rec("small", 5.0))  # no budget: not counted
    assert await b.spent() == frozenset()
    b.record(rec("big", 0.05))
    assert await b.spent() == {"big"}
    assert "$1.0000 of $1 in the last 1h" in b.refusal("big").message and b.refusal("big").status == 429


async def test_later_readings_replace_what_this_worker_counted_and_a_down_ledger_fails_open() -> None:
    ledger, clock = Ledger(), Clock()
    b = ModelBudgets(_models(), ledger, clock=clock)
    await b.spent()
    b.record(rec("big", 2.0))
    assert await b.spent() == {"big"}
    clock.t += 1.0  # older spend left the window: the ledger now says 0.2
    ledger.spent["big"] = 0.2
    assert await b.spent() == {"big"}  # starts the reading in the background, and does not wait for it...
    await _reading_done(b)
    assert len(ledger.reads) == 2
    assert await b.spent() == frozenset()  # ...which replaced the local count
    ledger.down = True
    b.record(rec("big", 0.9))
    clock.t += 1.0
    await b.spent()
    await _reading_done(b)
    assert await b.spent() == {"big"}  # the last reading plus this worker's records stand
    assert b.status()["big"]["spent_usd"] == pytest.approx(1.1)


async def test_no_budgets_reads_nothing() -> None:
    ledger = Ledger()
    b = ModelBudgets(_models()[1:], ledger)
    assert not b.active and await b.spent() == frozenset() and ledger.reads == []
