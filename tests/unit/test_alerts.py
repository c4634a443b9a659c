"""Alerts with fakes at the seams: when a budget alert fires, and how one is claimed and delivered."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.alerts import Alert, Alerter, BudgetWatch, cooldown_alert
from router.policy import Budget


class Emitted:
    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def emit(self, alert: Alert) -> None:
        self.alerts.append(alert)


def test_a_budget_alert_fires_once_per_share_per_period() -> None:
    now = [86400.0 * 100]
    sink = Emitted()
    watch = BudgetWatch(sink, [1.0, 0.8], lambda: now[0])
    day = Budget(usd=10.0, per="1d")
    watch.check("key", "app", 7.9, day)
    assert sink.alerts == []
    watch.check("key", "app", 8.0, day)
    watch.check("key", "app", 9.0, day)
    assert [a.detail["at"] for a in sink.alerts] == [0.8]
    watch.check("key", "app", 12.0, day)
    watch.check("model", "app", 12.0, day)  # another subject
    assert [(a.subject, a.detail["at"]) for a in sink.alerts[1:]] == [
        ("key app", 1.0),
        ("model app", 0.8),
        ("model app", 1.0),
    ]
    now[0] += 86400  # the next period: alerted again when crossed again
    watch.check("key", "app", 8.5, day)
    assert [a.detail["at"] for a in sink.alerts[4:]] == [0.8]
    assert len({a.key for a in sink.alerts}) == len(sink.alerts)


async def test_an_alert_is_sent_by_the_first_claim_only_and_retried() -> None:
    claimed: set[str] = set()
    posts: list[dict[str, Any]] = []
    failures = [2]

    def claim(key: str) -> bool:
        first = key not in claimed
        claimed.add(key)
        return first

    async def post(url: str, payload: dict[str, Any]) -> None:
        if failures[0]:
            failures[0] -= 1
            raise OSError("connection refused")
        posts.append(payload)

    alerter = Alerter("http://hook", claim, post, retry_s=(0.0, 0.0))
    alert = cooldown_alert("gpt-4o#2", 30.0, "HTTP 503: down", 1_800_000_000.0)
    assert await alerter.deliver(alert) and posts[0]["tiergate"]["server"] == "gpt-4o#2"
    assert not await alerter.deliver(alert)  # another worker's copy: claimed already
    assert len(posts) == 1

    def broken(key: str) -> bool:
        raise RuntimeError("ledger down")

    assert await Alerter("http://hook", broken, post, retry_s=()).deliver(alert)  # sent all the same
    assert len(posts) == 2


async def test_a_webhook_that_stays_down_costs_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    async def down(url: str, payload: dict[str, Any]) -> None:
        raise OSError("no route")

    alerter = Alerter("http://hook", lambda key: True, down, retry_s=(0.0,))
    assert await alerter.deliver(cooldown_alert("m", 30.0, "x", 0.0))
    assert "giving up on this alert" in caplog.text
