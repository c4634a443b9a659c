"""End-user budgets with a fake ledger and clock: counted per user, refused past the budget, bounded memory."""

from __future__ import annotations

import pytest

from gateway.end_users import EndUserBudgets
from gateway.errors import QuotaExceeded
from gateway.ledger import LedgerRecord
from router.policy import Budget


def _rec(user: str | None, cost: float) -> LedgerRecord:
    return LedgerRecord(ts=0.0, request_id="r", policy="p", requested_model="m", end_user=user, cost_usd=cost)


async def test_each_user_is_held_to_the_budget_and_others_are_not() -> None:
    in_ledger = {"alice": 0.4}
    reads: list[str] = []

    def read(user: str, since: float) -> float:
        reads.append(user)
        return in_ledger.get(user, 0.0)

    now = [1000.0]
    users = EndUserBudgets(Budget(usd=0.5, per="1d"), read, refresh_s=60, clock=lambda: now[0])
    await users.admit("alice")  # 0.4 of 0.5, read from the ledger
    users.record(_rec("alice", 0.2))  # this worker's own answer takes her over
    with pytest.raises(QuotaExceeded) as e:
        await users.admit("alice")
    assert "'alice' has spent" in e.value.message and e.value.status == 429
    await users.admit("bob")
    await users.admit(None)  # no user: not held to it
    assert reads == ["alice", "bob"]  # one read per user per refresh_s
    assert not EndUserBudgets(None, read).active


async def test_only_the_latest_users_are_kept() -> None:
    users = EndUserBudgets(Budget(usd=1.0, per="1h"), lambda user, since: 0.0, max_users=2)
    for u in ("a", "b", "c"):
        await users.admit(u)
    users.record(_rec("a", 5.0))  # "a" was dropped: nothing to count here; the ledger has it at the next read
    await users.admit("a")
