"""Per-key limits: requests and tokens per minute, spend per rolling window (router/policy.py: ApiKey).

Both are counted from the ledger, the one record every worker writes, so N workers enforce one limit, not N each.
A key's counts come from one indexed query (requests_key_ts) at most once per `refresh_s`; between reads this worker
adds what it admits and records itself. Limits are soft, as LiteLLM's and Portkey's are: a key can overshoot by what
other workers served since the last read (about `refresh_s` of their traffic, plus their requests still in flight),
and a request that was admitted is served and costed in full even if it takes the key over its budget.

If the ledger cannot be read, the last counts stand and requests are served: a limit must not take the gateway down
with its database (the ledger spools meanwhile and nothing is lost).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from starlette.concurrency import run_in_threadpool

from gateway.alerts import BudgetWatch
from gateway.auth import ledger_id
from gateway.errors import QuotaExceeded, RateLimited
from gateway.ledger import LedgerRecord
from gateway.ledger.stats import Usage
from router.policy import ApiKey

log = logging.getLogger("tiergate.limits")

MINUTE_S = 60.0
# An admitted request not recorded within this long is taken as lost to the count (a bug elsewhere); bounds memory.
FORGET_S = 3600.0


# (key id, requests since, spend since) -> Usage, called in a thread: gateway/ledger/stats.py's key_usage.
ReadUsage = Callable[[str, float, float], Usage]


@dataclass
class _Count:
    read_at: float = -math.inf  # never read: the first request waits for the ledger
    ledger: Usage = field(default_factory=Usage)
    in_flight_at_read: int = 0  # this worker's admitted requests the ledger had not recorded when it was read
    admitted_since: int = 0
    spent_since: float = 0.0
    tokens_since: int = 0
    reading: asyncio.Task[None] | None = None

    def requests(self) -> int:
        return self.ledger.requests + self.in_flight_at_read + self.admitted_since

    def spent(self) -> float:
        return self.ledger.spent_usd + self.spent_since

    def tokens(self) -> int:
        return self.ledger.tokens + self.tokens_since


def _rate_limited(name: str, unit: str, short: str, limit: int, used: int, wait: int) -> RateLimited:
    """OpenAI's 429 for a per-minute limit, `unit` requests or tokens, with its `x-ratelimit-*` headers."""
    err = RateLimited(
        f"Rate limit reached for the key '{name}' on {unit} per minute ({short}): limit {limit}, used {used}."
        f" Please try again in {wait}s.",
        None,
        "rate_limit_exceeded",
    )
    err.type = unit  # OpenAI's error type names the limit: "requests" or "tokens"
    err.headers = {
        "retry-after": str(wait),
        f"x-ratelimit-limit-{unit}": str(limit),
        f"x-ratelimit-remaining-{unit}": "0",
        f"x-ratelimit-reset-{unit}": f"{wait}s",
    }
    return err


class KeyLimits:
    """Admits a key's request or raises RateLimited / QuotaExceeded; a recorder sink (gateway/recorder.py) too."""

    def __init__(
        self,
        keys: Sequence[ApiKey],
        read: ReadUsage,
        refresh_s: float = 1.0,
        clock: Callable[[], float] = time.time,
        watch: BudgetWatch | None = None,
    ) -> None:
        self._read = read
        self._refresh_s = refresh_s
        self._clock = clock
        self._watch = watch  # alerts as spend crosses shares of a budget
        self._keys = {ledger_id(k.sha256): k for k in keys if k.limited}
        self._counts = {kid: _Count() for kid in self._keys}
        self._in_flight: dict[str, tuple[str, float]] = {}  # request id -> (key id, admitted at)

    @property
    def active(self) -> bool:
        """Whether any key has a limit (else admit() admits everything and record() has nothing to count)."""
        return bool(self._counts)

    async def admit(self, key: ApiKey | None, request_id: str) -> None:
        if key is None or not key.limited:
            return
        kid = ledger_id(key.sha256)
        c = self._counts[kid]
        now = self._clock()
        if c.reading is None and now - c.read_at >= self._refresh_s:
            # Read in the background: this request goes on with counts at most refresh_s old...
            c.reading = asyncio.create_task(self._refresh(kid, key, c))
        if c.read_at == -math.inf:
            assert c.reading is not None
            await asyncio.shield(c.reading)  # ...unless there are none yet (shielded: one caller's cancel is not all)
            now = self._clock()
        if key.budget is not None and c.spent() >= key.budget.usd:
            raise QuotaExceeded(
                f"The key '{key.name}' has spent its budget: ${c.spent():.4f} of ${key.budget.usd:g} in the last"
                f" {key.budget.per}. It is served again as older spend leaves that window."
            )
        # The oldest counted request leaving the minute is the first relief for either limit.
        first = c.ledger.first_ts if c.ledger.first_ts is not None else now
        wait = max(1, math.ceil(first + MINUTE_S - now))
        if key.rpm is not None and c.requests() >= key.rpm:
            raise _rate_limited(key.name, "requests", "RPM", key.rpm, c.requests(), wait)
        if key.tpm is not None and c.tokens() >= key.tpm:
            # A request's tokens are known only once it is answered, so the minute is judged by those answered.
            raise _rate_limited(key.name, "tokens", "TPM", key.tpm, c.tokens(), wait)
        c.admitted_since += 1
        self._in_flight[request_id] = (kid, now)

    def record(self, rec: LedgerRecord) -> None:
        """Sink for every finished request's record: its cost counts against its key from now on."""
        admitted = self._in_flight.pop(rec.request_id, None)
        if rec.key_id is None:
            return
        c = self._counts.get(rec.key_id)
        if c is not None and admitted is not None:
            c.spent_since += rec.cost_usd
            c.tokens_since += rec.prompt_tokens + rec.completion_tokens
            self._check_budget(rec.key_id, c)

    async def _refresh(self, kid: str, key: ApiKey, c: _Count) -> None:
        started = self._clock()
        spend_since = started - (key.budget.per_s if key.budget is not None else MINUTE_S)
        try:
            usage = await run_in_threadpool(self._read, kid, started - MINUTE_S, spend_since)
        except Exception as e:  # fail open: the last counts stand (module docstring)
            log.warning("could not read the ledger for key %s's limits: %s", key.name, e)
            if c.read_at == -math.inf:
                c.read_at = started  # retried after refresh_s, not on every request
            return
        finally:
            c.reading = None
        self._forget(started)
        # What this worker admitted before the read and has not recorded is not in the ledger yet.
        c.in_flight_at_read = sum(1 for k, t in self._in_flight.values() if k == kid and t >= started - MINUTE_S)
        c.read_at, c.ledger, c.admitted_since, c.spent_since, c.tokens_since = started, usage, 0, 0.0, 0
        self._check_budget(kid, c)  # spend by other workers and gateways on the ledger counts too

    def _check_budget(self, kid: str, c: _Count) -> None:
        key = self._keys[kid]
        if self._watch is not None and key.budget is not None:
            self._watch.check("key", key.name, c.spent(), key.budget)

    def _forget(self, now: float) -> None:
        stale = [rid for rid, (_, t) in self._in_flight.items() if t < now - FORGET_S]
        for rid in stale:
            del self._in_flight[rid]
