"""The dashboard in headless Chromium (Debian's, driven by playwright) after seeded traffic: the charts draw,
no console errors, and every number in the per-model table equals the ledger's own sums (computed here with SQL
on the ledger file). A filter changes the numbers to the filtered sums. The screenshot is kept in test-artifacts/."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from playwright.sync_api import Page

from gateway.auth import digest
from gateway.ledger import LedgerRecord
from tests.browser import browser
from tests.conftest import GatewayFactory, api_config
from tests.fakes.upstream import FakeUpstream

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _seed(url: str, svc: Any) -> None:
    a = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-a", max_retries=0)
    b = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-b", max_retries=0)
    for i in range(6):
        a.chat.completions.create(model="auto", messages=[{"role": "user", "content": f"easy question {i}"}])
    for i in range(3):
        b.chat.completions.create(
            model="auto",
            messages=[{"role": "user", "content": f"hard {i} [score=0.9]"}],
            user="ceo",
            extra_headers={"x-tiergate-tags": "exec,board" if i else "exec"},
        )
    judged = b.chat.completions.with_raw_response.create(model="mid", messages=[{"role": "user", "content": "direct"}])
    for score in (1.0, 0.5):  # two judgements of that answer: the table shows their mean, 0.75 (2)
        r = httpx.post(f"{url}/v1/feedback", json={"request_id": judged.headers["x-request-id"], "score": score})
        assert r.status_code == 201
    a.chat.completions.create(model="strict", messages=[{"role": "user", "content": "strict one"}])
    with pytest.raises(openai.BadRequestError):  # refused, routed nowhere: on the record with the model it asked for
        a.completions.create(model="mid", prompt="x", echo=True)
    # Earlier hours, so the charts over time have several buckets.
    now = time.time()
    for h in range(1, 6):
        for j in range(h):
            svc.ledger.record(
                LedgerRecord(
                    ts=now - h * 3600,
                    request_id=f"past-{h}-{j}",
                    policy="default",
                    requested_model="auto",
                    routed_model="gpt-4o" if j % 2 else "local-small",
                    tier=2 if j % 2 else 0,
                    prompt_tokens=100 * h,
                    cached_tokens=40 * h if j % 2 else 0,  # the hosted model's prompt cache
                    completion_tokens=50 * h,
                    cost_usd=0.001 * h if j % 2 else 0.0,
                    baseline_model="gpt-4o",
                    baseline_cost_usd=0.001 * h,
                    latency_ms=100.0 + 10 * j,
                    key_id="key-past",
                )
            )
    # A cascading policy's drafts (written directly: the seam here has no logprobs to judge).
    for k, outcome in enumerate(["kept", "kept", "escalated"]):
        svc.ledger.record(
            LedgerRecord(
                ts=now - 1800,
                request_id=f"cascade-{k}",
                policy="default",
                requested_model="auto",
                routed_model="local-small" if outcome == "kept" else "mid",
                tier=0 if outcome == "kept" else 1,
                cascade=outcome,
                draft_model="local-small",
                draft_confidence=0.9 if outcome == "kept" else 0.3,
            )
        )
    svc.ledger.flush()


def _ledger_sums(db: Path, policy: str | None = None) -> dict[str, dict[str, float]]:
    where, params = ("WHERE policy = ?", (policy,)) if policy else ("", ())
    with sqlite3.connect(db) as c:
        rows = c.execute(
            "SELECT coalesce(routed_model, '(none)'), count(*), sum(prompt_tokens), sum(completion_tokens),"
            f" sum(cost_usd), sum(baseline_cost_usd), sum(cached_tokens) FROM requests {where} GROUP BY routed_model",
            params,
        ).fetchall()
    return {
        m: {
            "requests": n,
            "prompt_tokens": pt,
            "completion_tokens": ct,
            "cost_usd": cost,
            "baseline_cost_usd": base,
            "cached_tokens": cached,
        }
        for m, n, pt, ct, cost, base, cached in rows
    }


def _table(page: Page) -> dict[str, dict[str, tuple[str, str]]]:
    """model -> field -> (shown text, raw value) for the per-model table's body rows."""
    cells = page.eval_on_selector_all(
        "#models tbody td[data-field]",
        "tds => tds.map(td => [td.parentElement.dataset.model, td.dataset.field, td.textContent,"
        " td.dataset.raw ?? ''])",
    )
    out: dict[str, dict[str, tuple[str, str]]] = {}
    for model, field, text, raw in cells:
        out.setdefault(model, {})[field] = (text, raw)
    return out


def _assert_matches(page: Page, want: dict[str, dict[str, float]]) -> None:
    shown = _table(page)
    assert set(shown) == set(want)
    for model, sums in want.items():
        row = shown[model]
        for field in ("requests", "prompt_tokens", "cached_tokens", "completion_tokens"):
            assert row[field][0] == str(int(sums[field])), (model, field)
        for field in ("cost_usd", "baseline_cost_usd"):
            text, raw = row[field]
            assert float(raw) == pytest.approx(sums[field], abs=1e-9), (model, field)
            assert float(text.lstrip("$")) == pytest.approx(sums[field], abs=1e-6), (model, field, text)
    total = sum(s["requests"] for s in want.values())
    assert page.inner_text('[data-total="requests"]') == str(int(total))
    spend = sum(s["cost_usd"] for s in want.values())
    assert float(page.inner_text('[data-total="cost_usd"]').lstrip("$")) == pytest.approx(spend, abs=1e-6)


def _drawn_canvases(page: Page) -> dict[str, int]:
    """Per chart canvas, how many pixels are not transparent (0 means nothing was drawn)."""
    result: dict[str, int] = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('canvas')].map(c => {
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
            return [c.id, n];
        }))"""
    )
    return result


def test_dashboard_draws_and_its_numbers_equal_the_ledger(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    _seed(server.url, svc)
    db = Path(svc.ledger.backend.where)
    ARTIFACTS.mkdir(exist_ok=True)
    problems: list[str] = []
    with browser(problems) as page:
        page.goto(f"{server.url}/dashboard")
        page.wait_for_function("window.tiergate && window.tiergate.ready === true", timeout=20_000)

        drawn = _drawn_canvases(page)
        assert set(drawn) == {"chart-spend", "chart-savings", "chart-requests", "chart-tiers", "chart-latency"}
        assert all(n > 500 for n in drawn.values()), drawn
        assert page.evaluate("Object.keys(window.tiergate.charts).length") == 5
        _assert_matches(page, _ledger_sums(db))
        assert page.locator("#series tbody tr").count() >= 6  # five past hours and this one
        assert page.is_visible("#cascade-section")
        assert not page.is_visible("#keys-section")  # an open gateway has no keys to show
        with sqlite3.connect(db) as c:
            (recorded,) = c.execute("SELECT COUNT(*) FROM requests").fetchone()
        assert page.locator("#requests tbody tr").count() == min(recorded, 50) and recorded > 10
        routed_mid = '#requests tbody tr:has(td[data-field="routed_model"]:text-is("mid"))'
        direct = page.locator(routed_mid).first.locator("td").all_inner_texts()
        assert direct[1:5] == ["chat.completions", "mid", "1", "200"]
        refused = page.locator("#requests tbody tr", has_text="asked: mid").all()
        assert [r.locator("td").all_inner_texts()[1:5] for r in refused] == [
            ["completions", "asked: mid", "\N{EN DASH}", "400"]
        ]
        quality = page.locator('#models tbody tr[data-model="mid"] td[data-field="mean_judgement"]')
        assert quality.inner_text() == "0.75 (2)"
        unjudged = page.locator('#models tbody tr[data-model="local-small"] td[data-field="mean_judgement"]')
        assert unjudged.inner_text() == "\N{EN DASH}"  # no judgement: the dashboard's mark for no value
        ceo = page.locator('#users tbody tr[data-user="ceo"] td')
        assert ceo.all_inner_texts()[:2] == ["ceo", "3"] and page.locator("#users tbody tr").count() == 1
        local = page.locator('#model-status tbody tr[data-model="local-small"] td').all_inner_texts()
        assert local[:5] == ["local-small", "0", "ok", "1", "0"] and page.is_visible("#model-status-section")
        tagged = {
            t: page.locator(f'#tags tbody tr[data-tag="{t}"] td').all_inner_texts()[:2] for t in ("exec", "board")
        }
        assert tagged == {"exec": ["exec", "3"], "board": ["board", "2"]}
        draft = page.locator('#cascade tbody tr[data-model="local-small"] td')
        assert draft.all_inner_texts()[:4] == ["local-small", "2", "1", "0"]
        assert draft.nth(5).inner_text() == "0.700"  # (0.9 + 0.9 + 0.3) / 3
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

        page.select_option("#f-policy", "strict")
        page.click("#filters button[type=submit]")
        page.wait_for_function("window.tiergate.ready === true && window.tiergate.data.filters.policy === 'strict'")
        _assert_matches(page, _ledger_sums(db, "strict"))
        assert "policy=strict" in page.url
        assert not page.is_visible("#cascade-section")  # no cascade under that policy
        assert not page.is_visible("#users-section")  # nor any end user

        page.select_option("#f-policy", "")
        page.fill("#f-user", "ceo")
        page.click("#filters button[type=submit]")
        page.wait_for_function("window.tiergate.ready === true && window.tiergate.data.filters.user === 'ceo'")
        assert page.inner_text('[data-total="requests"]') == "3" and "user=ceo" in page.url

        page.fill("#f-user", "")
        page.fill("#f-tag", "board")
        page.click("#filters button[type=submit]")
        page.wait_for_function("window.tiergate.ready === true && window.tiergate.data.filters.tag === 'board'")
        assert page.inner_text('[data-total="requests"]') == "2" and "tag=board" in page.url
    assert problems == []


def test_with_keys_a_browser_opens_the_dashboard_with_an_admin_key(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    cfg = api_config(fresh_upstream.base_url)
    cfg["keys"] = [
        {"name": "ops", "sha256": digest("tg-ops-key"), "admin": True},
        {"name": "app", "sha256": digest("tg-app-key"), "rpm": 60, "tpm": 1000, "budget": {"usd": 5, "per": "7d"}},
    ]
    server, svc = gateway_factory(cfg)
    openai.OpenAI(base_url=f"{server.url}/v1", api_key="tg-ops-key", max_retries=0).chat.completions.create(
        model="mid", messages=[{"role": "user", "content": "one"}]
    )
    svc.ledger.flush()
    problems: list[str] = []
    # The page answers 401 with a Basic challenge; the browser answers it with these credentials (a person would
    # type them into its prompt) and sends them with the page's own fetches of /api/stats.
    with browser(problems, http_credentials={"username": "ops", "password": "tg-ops-key"}) as page:
        page.goto(f"{server.url}/dashboard")
        page.wait_for_function("window.tiergate && window.tiergate.ready === true", timeout=20_000)
        assert page.inner_text('[data-total="requests"]') == "1"

        # Each key with its use against its limits.
        def shown(key: str, field: str) -> str:
            return page.inner_text(f"#keys tr[data-key='key-{digest(key)[:16]}'] td[data-field='{field}']")

        assert page.is_visible("#keys-section")
        assert shown("tg-ops-key", "name") == "ops" and shown("tg-ops-key", "requests_last_minute") == "1"
        assert shown("tg-app-key", "requests_last_minute") == "0 / 60"
        assert shown("tg-app-key", "tokens_last_minute") == "0 / 1000"
        assert shown("tg-app-key", "spent_usd") == "$0.000000 (7d)" and shown("tg-app-key", "budget_usd") == "$5.000000"
    assert problems == []
    with browser([], http_credentials={"username": "ops", "password": "wrong"}) as page:
        refused = page.goto(f"{server.url}/dashboard")
        assert refused is not None and refused.status == 401
