"""Per-key limits (gateway/limits.py) against a fake ledger reader and a fake clock."""

from __future__ import annotations

import asyncio
import logging

import pytest
from pydantic import ValidationError

from gateway.auth import ledger_id
from gateway.errors import QuotaExceeded, RateLimited
from gateway.ledger import LedgerRecord
from gateway.ledger.stats import Usage
from gateway.limits import KeyLimits
from router.policy import ApiKey, Budget

SHA = "a" * 64


class FakeLedger:
    """What the ledger answers for a key; counts the reads."""

    def __init__(self, usage: Usage | None = None, fail: bool = False) -> None:
        self.usage, self.fail, self.reads = usage or Usage(), fail, 0

    def __call__(self, key_id: str, requests_since: float, spend_since: float) -> Usage:
        self.reads += 1
        if self.fail:
            raise RuntimeError("ledger down")
        return self.usage


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def _limits(key: ApiKey, ledger: FakeLedger, clock: Clock) -> KeyLimits:
    return KeyLimits([key], ledger, refresh_s=1.0, clock=clock)


def _done(rid: str, key: ApiKey, cost: float, tokens: int = 0) -> LedgerRecord:
    kid = ledger_id(key.sha256)
    return LedgerRecord(0.0, rid, "default", "m", key_id=kid, cost_usd=cost, prompt_tokens=tokens)


async def _admit_n(limits: KeyLimits, key: ApiKey, n: int, prefix: str = "r") -> None:
    for i in range(n):
        await limits.admit(key, f"{prefix}{i}")


def test_a_key_over_its_requests_per_minute_gets_openais_429_with_when_to_retry() -> None:
    key, ledger, clock = ApiKey(name="app", sha256=SHA, rpm=3), FakeLedger(), Clock()
    limits = _limits(key, ledger, clock)

    async def go() -> RateLimited:
        await _admit_n(limits, key, 3)
        with pytest.raises(RateLimited) as over:
            await limits.admit(key, "r3")
        return over.value

    err = asyncio.run(go())
    assert (err.status, err.type, err.code) == (429, "requests", "rate_limit_exceeded")
    assert "limit 3, used 3" in err.message
    # Nothing in the ledger yet, so the earliest counted request is taken as now: a minute to wait at most.
    assert err.headers["retry-after"] == "60" and err.headers["x-ratelimit-remaining-requests"] == "0"


def test_the_ledger_counts_every_workers_requests_and_says_when_the_oldest_leaves_the_minute() -> None:
    key, clock = ApiKey(name="app", sha256=SHA, rpm=5), Clock()
    # Other workers served 4 in the last minute, the first of them 50 s ago.
    ledger = FakeLedger(Usage(requests=4, first_ts=clock.t - 50.0))
    limits = _limits(key, ledger, clock)

    async def go() -> RateLimited:
        await limits.admit(key, "mine")
        with pytest.raises(RateLimited) as over:
            await limits.admit(key, "one-too-many")
        return over.value

    assert asyncio.run(go()).headers["retry-after"] == "10"
    assert ledger.reads == 1


def test_counts_are_reread_after_refresh_s_and_requests_still_in_flight_stay_counted() -> None:
    key, ledger, clock = ApiKey(name="app", sha256=SHA, rpm=3), FakeLedger(), Clock()
    limits = _limits(key, ledger, clock)

    async def go() -> None:
        await _admit_n(limits, key, 2)  # in flight: not recorded, so not in the ledger
        limits.record(_done("r0", key, 0.0))  # this one finished; the fake ledger still says 0 requests
        clock.t += 1.5
        await limits.admit(key, "r2")  # starts a read in the background; goes on with the old counts
        await asyncio.sleep(0.05)  # the read completes
        assert ledger.reads == 2
        # The ledger (0) + r1 and r2, admitted and not yet recorded: 2 of 3, so one more is admitted...
        await limits.admit(key, "r3")
        # ...and then the key is full.
        with pytest.raises(RateLimited):
            await limits.admit(key, "r4")

    asyncio.run(go())


def test_tokens_per_minute_count_the_answered_requests_of_every_worker() -> None:
    key, clock = ApiKey(name="app", sha256=SHA, tpm=1000), Clock()
    ledger = FakeLedger(Usage(requests=2, first_ts=clock.t - 30.0, tokens=700))  # other workers' answered tokens
    limits = _limits(key, ledger, clock)

    async def go() -> RateLimited:
        await limits.admit(key, "a")
        await limits.admit(key, "b")  # 700 counted: both go; their tokens are not known until they are answered
        limits.record(_done("a", key, 0.0, tokens=250))
        await limits.admit(key, "c")  # 950
        limits.record(_done("b", key, 0.0, tokens=60))
        with pytest.raises(RateLimited) as over:
            await limits.admit(key, "d")  # 1010
        return over.value

    err = asyncio.run(go())
    assert (err.status, err.type, err.code) == (429, "tokens", "rate_limit_exceeded")
    assert "tokens per minute (TPM): limit 1000, used 1010" in err.message
    assert err.headers["x-ratelimit-limit-tokens"] == "1000" and err.headers["retry-after"] == "30"


def test_a_key_that_has_spent_its_budget_gets_insufficient_quota_and_no_retry() -> None:
    key = ApiKey(name="app", sha256=SHA, budget=Budget(usd=1.0, per="1d"))
    ledger, clock = FakeLedger(Usage(spent_usd=0.9)), Clock()
    limits = _limits(key, ledger, clock)

    async def go() -> QuotaExceeded:
        await limits.admit(key, "a")
        await limits.admit(key, "b")  # both admitted at $0.90: what they will cost is not known in advance
        limits.record(_done("a", key, 0.15))
        with pytest.raises(QuotaExceeded) as spent:
            await limits.admit(key, "c")
        return spent.value

    err = asyncio.run(go())
    assert (err.status, err.type, err.code) == (429, "insufficient_quota", "insufficient_quota")
    assert "$1.0500 of $1 in the last 1d" in err.message
    assert err.headers == {"x-should-retry": "false"}  # the openai SDK would otherwise retry it twice


def test_records_of_requests_the_limits_did_not_admit_are_not_counted_twice() -> None:
    key = ApiKey(name="app", sha256=SHA, budget=Budget(usd=1.0))
    limits = _limits(key, FakeLedger(Usage(spent_usd=0.5)), Clock())

    async def go() -> None:
        await limits.admit(key, "a")
        limits.record(_done("refused-unread", key, 0.4))  # e.g. a 400: never admitted here, the ledger counts it
        limits.record(_done("a", key, 0.4))
        limits.record(_done("a", key, 0.4))  # one record per request: a second is not a second cost
        await limits.admit(key, "b")  # 0.5 + 0.4 < 1

    asyncio.run(go())


def test_without_limits_the_ledger_is_never_read() -> None:
    key, ledger = ApiKey(name="app", sha256=SHA), FakeLedger(fail=True)
    limits = _limits(key, ledger, Clock())
    asyncio.run(_admit_n(limits, key, 100))
    asyncio.run(limits.admit(None, "open-gateway"))
    assert ledger.reads == 0


def test_an_unreadable_ledger_fails_open_and_is_retried_after_refresh_s(caplog: pytest.LogCaptureFixture) -> None:
    key, ledger, clock = ApiKey(name="app", sha256=SHA, rpm=100), FakeLedger(fail=True), Clock()
    limits = _limits(key, ledger, clock)

    async def go() -> None:
        with caplog.at_level(logging.WARNING, logger="tiergate.limits"):
            await _admit_n(limits, key, 10)
        assert ledger.reads == 1  # not once per request
        clock.t += 2.0
        ledger.fail = False
        await limits.admit(key, "after")
        await asyncio.sleep(0.05)

    asyncio.run(go())
    assert ledger.reads == 2
    assert "could not read the ledger for key app's limits: ledger down" in caplog.text


def test_limits_in_the_policy_file_are_checked() -> None:
    assert ApiKey(name="k", sha256=SHA, budget={"usd": 5, "per": "7d"}).budget == Budget(usd=5.0, per="7d")  # type: ignore[arg-type]
    assert Budget(usd=1).per_s == 30 * 86400
    bad_values = (
        {"rpm": 0},
        {"tpm": -1},
        {"budget": {"usd": 0}},
        {"budget": {"usd": 1, "per": "monthly"}},
        {"rpm": 5.5},
    )
    for bad in bad_values:
        with pytest.raises(ValidationError):
            ApiKey.model_validate({"name": "k", "sha256": SHA, **bad})
