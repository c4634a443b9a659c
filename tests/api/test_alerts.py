"""Alerts through running gateways to a webhook on loopback: a key's budget crossing 80% and 100% and a model
cooling down each reach the webhook once, though two gateways on one ledger both see them; a webhook that fails is
retried."""

from __future__ import annotations

import time
from pathlib import Path

import openai
import pytest

from gateway.auth import digest
from tests.conftest import GatewayFactory, api_config, sdk, until
from tests.fakes.upstream import FakeUpstream
from tests.fakes.webhook import Hook, webhook

KEY, OTHER = "tg-alerted-key-1", "tg-other-key-2"
Q = [{"role": "user", "content": "a few words of question [score=0.5]"}]


def test_alerts_reach_the_webhook_once_across_gateways(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with webhook() as hook:
        monkeypatch.setenv("TIERGATE_ALERT_WEBHOOK", hook.url)
        cfg = api_config(fresh_upstream.base_url)
        cfg["keys"] = [
            {"name": "app", "sha256": digest(KEY), "budget": {"usd": 1e-7, "per": "1d"}},
            {"name": "other", "sha256": digest(OTHER)},
        ]
        cfg["cooldown"] = {"failures": 1, "window_s": 60, "cooldown_s": 300}
        ledger = str(tmp_path / "shared.sqlite3")
        one, _ = gateway_factory(cfg, ledger_url=ledger)
        two, _ = gateway_factory(cfg, ledger_url=ledger)
        hook.fail_next = 1  # the first post fails: it is retried

        sdk(one.url, KEY).chat.completions.create(model="mid", messages=Q)  # spends far more than the budget
        until(lambda: len(hook.received) == 2, "both budget alerts")
        with pytest.raises(openai.RateLimitError):  # the second gateway reads the same spend: it alerts too...
            sdk(two.url, KEY).chat.completions.create(model="mid", messages=Q)
        with pytest.raises(openai.RateLimitError):
            sdk(one.url, KEY).chat.completions.create(model="mid", messages=Q)

        fresh_upstream.script("flaky", status=503)
        assert (_fail_over(one.url, OTHER), _fail_over(two.url, OTHER)) == ("mid", "mid")  # each sees flaky fail
        until(lambda: any("flaky" in t for t in hook.texts()), "the cooldown alert")
        time.sleep(1.5)  # ...but the ledger lets one alert through per event: give a duplicate time to show
        budget = sorted(t for t in hook.texts() if "budget" in t)
        assert len(budget) == 2 and "'app' has spent" in budget[0]
        assert {x["tiergate"]["at"] for x in hook.received if x["tiergate"]["kind"] == "budget"} == {0.8, 1.0}
        cooling = [x for x in hook.received if x["tiergate"]["kind"] == "cooldown"]
        assert len(cooling) == 1 and cooling[0]["tiergate"]["server"] == "flaky"
        assert "HTTP 503" in cooling[0]["tiergate"]["last_error"]


def _fail_over(url: str, key: str = "unused") -> str:
    """A routed request: flaky (the cheapest tier-1 model) fails, mid answers."""
    r = sdk(url, key).chat.completions.with_raw_response.create(model="auto", messages=Q)
    return r.headers["x-tiergate-model"]


def test_without_a_webhook_alerts_go_to_the_log(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    hook = Hook()
    cfg = api_config(fresh_upstream.base_url)
    cfg["cooldown"] = {"failures": 1, "window_s": 60, "cooldown_s": 300}
    fresh_upstream.script("flaky", status=503)
    server, _ = gateway_factory(cfg)
    with caplog.at_level("WARNING", logger="tiergate.alerts"):
        assert _fail_over(server.url) == "mid"
        until(lambda: any("alert:" in r.getMessage() for r in caplog.records), "the alert in the log")
    assert hook.received == []
