"""Alerts for operators: a key's or a model's spend crossing a share of its budget, a model cooling down. Each goes
to the log and, when the policy names a variable holding a webhook URL, to that URL as JSON (`{"text": ...}`, what
Slack's and Mattermost's incoming webhooks take, with the details under "tiergate").

One alert per event across every worker and gateway on one ledger: before sending, a worker claims the alert's key in
the ledger's `alerts` table, and only the worker whose claim is first sends it. If the ledger cannot be read, the
alert is sent anyway (a duplicate beats silence). Sending happens in the background, off the request path, with a
few retries; a webhook that stays down costs log lines, never a request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from starlette.concurrency import run_in_threadpool

from router.policy import Budget

log = logging.getLogger("tiergate.alerts")

Claim = Callable[[str], bool]  # the alert's key -> True if this worker is the first to claim it (blocking: a thread)
Post = Callable[[str, dict[str, Any]], Awaitable[None]]  # (url, payload); raises on failure
QUEUE_MAX = 1000


@dataclass(frozen=True)
class Alert:
    kind: str  # "budget" or "cooldown"
    subject: str  # what it is about: "key app", "model gpt-4o", "server gpt-4o#2"
    text: str  # one line for a human
    key: str  # one alert per key, across workers
    detail: dict[str, Any] = field(default_factory=dict)


async def post_json(url: str, payload: dict[str, Any]) -> None:
    async with httpx.AsyncClient(timeout=5.0) as client:
        r = await client.post(url, json=payload)
        r.raise_for_status()


class Alerter:
    def __init__(
        self, url: str | None, claim: Claim, post: Post = post_json, retry_s: Sequence[float] = (1.0, 5.0)
    ) -> None:
        self.url = url  # None: the log only (replaced when a reloaded policy names another variable)
        self._claim, self._post, self._retry_s = claim, post, tuple(retry_s)
        self._queue: asyncio.Queue[Alert] | None = None

    def emit(self, alert: Alert) -> None:
        """Queue an alert (called on the event loop, from the request path: returns at once)."""
        if self._queue is None:
            self._queue = asyncio.Queue(QUEUE_MAX)
        try:
            self._queue.put_nowait(alert)
        except asyncio.QueueFull:
            log.error("alert queue full, dropped: %s", alert.text)

    async def run(self) -> None:
        """The background task that claims and sends what `emit` queued, one at a time."""
        if self._queue is None:
            self._queue = asyncio.Queue(QUEUE_MAX)
        while True:
            await self.deliver(await self._queue.get())

    async def deliver(self, alert: Alert) -> bool:
        """Claim the alert and send it; False if another worker claimed it first."""
        try:
            first = await run_in_threadpool(self._claim, alert.key)
        except Exception as e:  # the ledger is down: send anyway (module docstring)
            log.warning("could not claim alert %s in the ledger (%s); sending it all the same", alert.key, e)
            first = True
        if not first:
            return False
        log.warning("alert: %s", alert.text)
        if self.url is None:
            return True
        payload = {
            "text": f"Tiergate: {alert.text}",
            "tiergate": {"kind": alert.kind, "subject": alert.subject, **alert.detail},
        }
        for wait in (*self._retry_s, None):
            try:
                await self._post(self.url, payload)
                return True
            except Exception as e:
                if wait is None:
                    log.error("alert webhook failed, giving up on this alert: %s: %s", type(e).__name__, e)
                    return True
                log.warning("alert webhook failed (%s), retrying in %gs", type(e).__name__, wait)
                await asyncio.sleep(wait)
        return True


class Emitter(Protocol):
    def emit(self, alert: Alert) -> None: ...


class BudgetWatch:
    """Alerts when a key's or a model's spend crosses each of the policy's fractions of its budget: once per
    budget period (the budget's `per`, counted from the epoch) per fraction."""

    def __init__(
        self, alerter: Emitter | None, fractions: Sequence[float], clock: Callable[[], float] = time.time
    ) -> None:
        self._alerter, self._fractions, self._clock = alerter, sorted(fractions), clock
        self._last: dict[tuple[str, str, float], int] = {}  # (kind, name, fraction) -> period last alerted

    def check(self, kind: str, name: str, spent: float, budget: Budget) -> None:
        if self._alerter is None:
            return
        period = int(self._clock() // budget.per_s)
        for f in self._fractions:
            if spent < f * budget.usd:
                break
            if self._last.get((kind, name, f)) == period:
                continue
            self._last[(kind, name, f)] = period
            self._alerter.emit(
                Alert(
                    "budget",
                    f"{kind} {name}",
                    f"the {kind} '{name}' has spent ${spent:.6g}, {spent / budget.usd:.0%} of its ${budget.usd:g}"
                    f" budget per {budget.per}",
                    f"budget:{kind}:{name}:{f:g}:{budget.per}:{period}",
                    {"name": name, "spent_usd": spent, "budget_usd": budget.usd, "per": budget.per, "at": f},
                )
            )


def cooldown_alert(server: str, seconds: float, last_error: str, now: float) -> Alert:
    """A server began cooling down: one alert per server per cooldown period, however many workers saw it fail."""
    period = int(now // max(seconds, 60.0))
    return Alert(
        "cooldown",
        f"server {server}",
        f"model server '{server}' is failing ({last_error}): routing passes it over for {seconds:g}s",
        f"cooldown:{server}:{period}",
        {"server": server, "cooldown_s": seconds, "last_error": last_error},
    )
