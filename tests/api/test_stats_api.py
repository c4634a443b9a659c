"""The reporting surface over real HTTP after SDK traffic: /api/stats (filters, errors), its CSV export, /metrics,
per-key attribution without the key itself, prompt text only when a policy opts in, and the dashboard's files."""

from __future__ import annotations

import csv
import hashlib
import io

import httpx
import openai
import pytest

from tests.conftest import GatewayFactory, api_config, sdk
from tests.fakes.upstream import FakeUpstream


def _traffic(url: str) -> None:
    a, b = sdk(url, "sk-team-a"), sdk(url, "sk-team-b")
    for i in range(3):
        a.chat.completions.create(model="auto", messages=[{"role": "user", "content": f"easy {i}"}])
    a.chat.completions.create(model="mid", messages=[{"role": "user", "content": "direct"}])
    b.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hard [score=0.9]"}])
    b.chat.completions.create(model="strict", messages=[{"role": "user", "content": "tiny"}])
    with pytest.raises(openai.NotFoundError):
        b.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])


def test_stats_per_model_per_key_and_policy(gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream) -> None:
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    _traffic(server.url)
    rows = svc.ledger.rows()
    assert len(rows) == 7
    key_a = "key-" + hashlib.sha256(b"sk-team-a").hexdigest()[:16]
    assert {r["key_id"] for r in rows} == {key_a, "key-" + hashlib.sha256(b"sk-team-b").hexdigest()[:16]}
    assert all(r["prompt"] is None for r in rows)  # no prompt text unless a policy opts in
    assert not any("sk-team" in str(v) for r in rows for v in r.values())

    stats = httpx.get(f"{server.url}/api/stats").json()
    by_model = {m["model"]: m for m in stats["models"]}
    assert {k: v["requests"] for k, v in by_model.items()} == {"local-small": 4, "mid": 1, "gpt-4o": 1, "(none)": 1}
    assert by_model["(none)"]["errors"] == 1
    assert stats["totals"]["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in rows))
    assert stats["totals"]["saved_usd"] == pytest.approx(sum(r["baseline_cost_usd"] - r["cost_usd"] for r in rows))
    assert by_model["gpt-4o"]["saved_usd"] == 0.0 and by_model["local-small"]["saved_usd"] > 0
    assert stats["choices"] == {"policies": ["default", "strict"], "keys": sorted({r["key_id"] for r in rows})}

    only_a = httpx.get(f"{server.url}/api/stats", params={"key": key_a}).json()
    assert only_a["totals"]["requests"] == 4
    strict = httpx.get(f"{server.url}/api/stats", params={"policy": "strict"}).json()
    assert [(m["model"], m["requests"]) for m in strict["models"]] == [("local-small", 1)]
    past = httpx.get(f"{server.url}/api/stats", params={"from": "2020-01-01T00:00", "to": "2020-01-02"}).json()
    assert past["totals"]["requests"] == 0 and past["range"]["bucket"] == "hour"

    for params, param in [
        ({"since": "soon"}, "since"),
        ({"bucket": "week"}, "bucket"),
        ({"from": "2021-01-02", "to": "2021-01-01"}, "from"),
        ({"to": "tomorrow"}, "to"),
        ({"since": "500d"}, "since"),
    ]:
        bad = httpx.get(f"{server.url}/api/stats", params=params)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == param, (params, bad.text)

    models_csv = httpx.get(f"{server.url}/api/stats.csv")
    assert models_csv.headers["content-type"].startswith("text/csv")
    table = {r["model"]: r for r in csv.DictReader(io.StringIO(models_csv.text))}
    assert {k: int(v["requests"]) for k, v in table.items()} == {k: v["requests"] for k, v in by_model.items()}
    series = list(csv.DictReader(io.StringIO(httpx.get(f"{server.url}/api/stats.csv?table=series").text)))
    assert sum(int(r["requests"]) for r in series) == 7
    assert httpx.get(f"{server.url}/api/stats.csv?table=x").status_code == 400


def test_prompts_are_recorded_only_where_a_policy_opts_in(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    cfg = api_config(fresh_upstream.base_url)
    cfg["policies"]["strict"]["record_prompts"] = True
    server, svc = gateway_factory(cfg)
    c = sdk(server.url, "k")
    c.chat.completions.create(model="strict", messages=[{"role": "user", "content": "keep me"}])
    c.chat.completions.create(model="auto", messages=[{"role": "user", "content": "forget me"}])
    assert [r["prompt"] for r in svc.ledger.rows()] == ["keep me", None]


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_count_requests_cost_and_latency_per_model(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    _traffic(server.url)
    r = httpx.get(f"{server.url}/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    m = r.text
    assert _metric(m, "tiergate_requests_total", model="local-small", tier="0", status="200") == 4
    assert _metric(m, "tiergate_requests_total", status="404") == 1
    gpt = [x for x in svc.ledger.rows() if x["routed_model"] == "gpt-4o"]
    assert _metric(m, "tiergate_cost_usd_total", model="gpt-4o") == pytest.approx(gpt[0]["cost_usd"])
    assert _metric(m, "tiergate_request_latency_seconds_count", model="local-small") == 4
    (mid,) = [x for x in svc.ledger.rows() if x["routed_model"] == "mid"]
    assert _metric(m, "tiergate_tokens_total", model="mid", direction="prompt") == mid["prompt_tokens"] > 0
    assert "tiergate_ledger_spooled_records 0.0" in m


def test_dashboard_page_and_its_assets_are_served_locally(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    server, _ = gateway_factory(api_config(fresh_upstream.base_url))
    page = httpx.get(f"{server.url}/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "http://" not in page.text and "https://" not in page.text  # nothing from a CDN
    for asset in ("/static/dashboard.js", "/static/dashboard.css", "/static/vendor/chart.js-4.6.1/chart.umd.min.js"):
        assert httpx.get(server.url + asset).status_code == 200, asset


def test_spend_per_end_user(gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream) -> None:
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    client = sdk(server.url)
    for _ in range(2):
        client.chat.completions.create(model="mid", messages=[{"role": "user", "content": "one two"}], user="alice")
    client.responses.create(model="mid", input="three four five", safety_identifier="bob")  # the newer name for it
    client.chat.completions.create(model="mid", messages=[{"role": "user", "content": "anonymous"}])
    assert [r["end_user"] for r in svc.ledger.rows()] == ["alice", "alice", "bob", None]
    assert fresh_upstream.received[2]["user"] == "bob"  # passed on, as chat's `user`, to the upstream too

    users = httpx.get(f"{server.url}/api/stats").json()["users"]
    assert [(u["end_user"], u["requests"]) for u in users] == [("alice", 2), ("bob", 1)]
    assert all(u["cost_usd"] > 0 for u in users)
    alice = httpx.get(f"{server.url}/api/stats", params={"user": "alice"}).json()
    assert alice["totals"]["requests"] == 2 and alice["totals"]["cost_usd"] == pytest.approx(users[0]["cost_usd"])
    exported = httpx.get(f"{server.url}/api/stats.csv", params={"table": "users"}).text
    assert [r["end_user"] for r in csv.DictReader(io.StringIO(exported))] == ["alice", "bob"]
    client.chat.completions.create(model="mid", messages=[{"role": "user", "content": "x"}], user="u" * 300)
    assert svc.ledger.rows()[-1]["end_user"] == "u" * 256  # OpenAI's bound: cut, not refused


def test_spend_per_tag(gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream) -> None:
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    client = sdk(server.url)
    search, both = {"x-tiergate-tags": "team-search"}, {"x-tiergate-tags": "team-search, feature_summary"}
    client.chat.completions.create(model="mid", messages=[{"role": "user", "content": "a b"}], extra_headers=search)
    client.chat.completions.create(model="mid", messages=[{"role": "user", "content": "a b c"}], extra_headers=both)
    client.responses.create(model="mid", input="one two", extra_headers=both)
    client.embeddings.create(model="all-minilm-l6-v2", input="x", extra_headers={"x-tiergate-tags": "batch"})
    client.chat.completions.create(model="mid", messages=[{"role": "user", "content": "untagged"}])
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(
            model="mid", messages=[{"role": "user", "content": "x"}], extra_headers={"x-tiergate-tags": "no spaces"}
        )
    assert bad.value.body["param"] == "x-tiergate-tags"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError):  # well-formed tags on a malformed body: the team's own failure
        client.chat.completions.create(model="mid", messages=[], extra_headers=search)
    rows = svc.ledger.rows()
    assert [r["tags"] for r in rows] == [
        ",team-search,",
        ",team-search,feature_summary,",
        ",team-search,feature_summary,",
        ",batch,",
        None,
        None,  # the refused request is on the record, without the tags it was refused for
        ",team-search,",
    ]
    assert rows[-2]["status"] == rows[-1]["status"] == 400
    stats = httpx.get(f"{server.url}/api/stats").json()
    by_tag = {t["tag"]: t for t in stats["tags"]}
    assert {t: v["requests"] for t, v in by_tag.items()} == {"team-search": 4, "feature_summary": 2, "batch": 1}
    chat_rows = [r for r in rows if r["tags"] and "team-search" in r["tags"]]
    assert by_tag["team-search"]["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in chat_rows))
    feature = httpx.get(f"{server.url}/api/stats", params={"tag": "feature_summary"}).json()
    assert feature["totals"]["requests"] == 2 and feature["filters"]["tag"] == "feature_summary"
    exported = httpx.get(f"{server.url}/api/stats.csv", params={"table": "tags"}).text
    assert [r["tag"] for r in csv.DictReader(io.StringIO(exported))] == ["team-search", "feature_summary", "batch"]
    assert httpx.get(f"{server.url}/api/stats", params={"tag": "a,b"}).status_code == 400
