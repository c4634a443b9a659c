"""Ledger sums on both backends, against sums computed here from the records themselves: per model, tier mix,
time buckets, filters by range / policy / key, percentiles; and `tiergate report` printing the same table."""

from __future__ import annotations

import csv
import io
import json
import random
import subprocess
import sys
from collections import defaultdict
from typing import Any

import pytest

from gateway.ledger import LedgerRecord, open_ledger
from gateway.ledger.backends import make_backend
from gateway.ledger.stats import NO_MODEL, StatsQuery, Usage, end_users, key_usage, percentile, report

HOUR = 3600.0
T0 = 1_790_000_000.0 - (1_790_000_000.0 % 86400)  # a UTC midnight, so hour and day buckets are easy to predict


def rec(ts: float, request_id: str, policy: str = "default", **kw: Any) -> LedgerRecord:
    """A record of an `auto` request; the rest as given."""
    return LedgerRecord(ts=ts, request_id=request_id, policy=policy, requested_model="auto", **kw)


def traffic(n: int = 400, seed: int = 7) -> list[LedgerRecord]:
    rnd = random.Random(seed)
    models = [("small", 0, 0.0), ("mid", 1, 2e-6), ("big", 2, 1e-5)]
    out = []
    for i in range(n):
        name, tier, price = rnd.choice(models)
        pt, ct = rnd.randint(5, 500), rnd.randint(1, 300)
        failed = rnd.random() < 0.1
        hit = not failed and rnd.random() < 0.2
        cost = 0.0 if failed or hit else price * (pt + ct)
        base = 0.0 if failed else 1e-5 * (pt + ct)
        out.append(
            LedgerRecord(
                ts=T0 + rnd.uniform(0, 50 * HOUR),
                request_id=f"r{i}",
                policy=rnd.choice(["default", "frugal"]),
                requested_model="auto",
                routed_model=None if failed and rnd.random() < 0.5 else name,
                tier=None if failed else tier,
                prompt_tokens=0 if failed else pt,
                completion_tokens=0 if failed else ct,
                cost_usd=cost,
                baseline_cost_usd=base,
                saved_usd=price * (pt + ct) if hit else 0.0,
                latency_ms=rnd.uniform(1, 900),
                status=502 if failed else 200,
                cache="hit" if hit else rnd.choice(["miss", "bypass"]),
                key_id=rnd.choice(["key-a", "key-b", None]),
                usage_estimated=not failed and rnd.random() < 0.1,
                cached_tokens=rnd.randint(1, pt) if not failed and rnd.random() < 0.3 else 0,
                tags=rnd.choice([None, ",team_a,", ",teamXa,", ",team_a,web,", ",web,"]),  # _ is LIKE's wildcard
                degraded=not failed and rnd.random() < 0.15,
            )
        )
    return out


def expected(recs: list[LedgerRecord], since: float, until: float, **eq: Any) -> dict[str, dict[str, Any]]:
    sel = [r for r in recs if since <= r.ts < until and all(getattr(r, k) == v for k, v in eq.items())]
    by: dict[str, list[LedgerRecord]] = defaultdict(list)
    for r in sel:
        by[r.routed_model or NO_MODEL].append(r)
    out = {}
    for m, rs in by.items():
        ok = sorted(r.latency_ms for r in rs if r.status < 400)
        looked = [r for r in rs if r.cache != "bypass"]
        out[m] = {
            "requests": len(rs),
            "errors": sum(r.status >= 400 for r in rs),
            "degraded": sum(r.degraded for r in rs),
            "prompt_tokens": sum(r.prompt_tokens for r in rs),
            "cached_tokens": sum(r.cached_tokens for r in rs),
            "completion_tokens": sum(r.completion_tokens for r in rs),
            "estimated_usage": sum(r.usage_estimated for r in rs),
            "cost_usd": pytest.approx(sum(r.cost_usd for r in rs), abs=1e-9),
            "baseline_cost_usd": pytest.approx(sum(r.baseline_cost_usd for r in rs), abs=1e-9),
            "saved_usd": pytest.approx(sum(r.baseline_cost_usd - r.cost_usd for r in rs), abs=1e-9),
            "cache_hit_rate": pytest.approx(sum(r.cache == "hit" for r in looked) / len(looked), abs=5e-5)
            if looked
            else None,
            "p50_ms": pytest.approx(ok[max(0, -(-len(ok) // 2) - 1)]) if ok else None,
        }
    return out


@pytest.fixture
def seeded(ledger_url: str) -> tuple[Any, list[LedgerRecord]]:
    recs = traffic()
    ledger = open_ledger(ledger_url)
    for r in recs:
        ledger.record(r)
    ledger.flush()
    yield ledger, recs
    ledger.close()


def _check(got: dict[str, Any], want: dict[str, dict[str, Any]]) -> None:
    table = {r["model"]: r for r in got["models"]}
    assert set(table) == set(want)
    for m, w in want.items():
        assert {k: table[m][k] for k in w} == w, m


def test_per_model_sums_and_filters_match_the_records(seeded: tuple[Any, list[LedgerRecord]]) -> None:
    ledger, recs = seeded
    for since, until, eq in [
        (T0, T0 + 60 * HOUR, {}),
        (T0 + 10 * HOUR, T0 + 20 * HOUR, {}),
        (T0, T0 + 60 * HOUR, {"policy": "frugal"}),
        (T0, T0 + 60 * HOUR, {"key_id": "key-b"}),
        (T0 + 5 * HOUR, T0 + 30 * HOUR, {"policy": "default", "key_id": "key-a"}),
    ]:
        q = StatsQuery(since=since, until=until, policy=eq.get("policy"), key_id=eq.get("key_id"))
        got = report(ledger.reader, q)
        _check(got, expected(recs, since, until, **eq))
        assert got["totals"]["requests"] == sum(r["requests"] for r in got["models"])


def test_tier_mix_and_time_buckets(seeded: tuple[Any, list[LedgerRecord]]) -> None:
    ledger, recs = seeded
    for bucket, width in (("hour", HOUR), ("day", 86400.0)):
        got = report(ledger.reader, StatsQuery(since=T0, until=T0 + 60 * HOUR, bucket=bucket))  # type: ignore[arg-type]
        want: dict[tuple[int, str], list[LedgerRecord]] = defaultdict(list)
        for r in recs:
            want[(int(T0 + ((r.ts - T0) // width) * width), r.routed_model or NO_MODEL)].append(r)
        series = {(s["bucket_start"], s["model"]): s for s in got["series"]}
        assert set(series) == set(want)
        for k, rs in want.items():
            assert series[k]["requests"] == len(rs)
            assert series[k]["cost_usd"] == pytest.approx(sum(r.cost_usd for r in rs), abs=1e-9)
            assert series[k]["baseline_cost_usd"] == pytest.approx(sum(r.baseline_cost_usd for r in rs), abs=1e-9)
    tiers: dict[int, int] = defaultdict(int)
    for r in recs:
        if r.tier is not None:
            tiers[r.tier] += 1
    assert {t["tier"]: t["requests"] for t in got["tiers"]} == tiers
    assert got["choices"] == {"policies": ["default", "frugal"], "keys": ["key-a", "key-b"]}


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 95) == 95.0
    assert percentile([5.0], 95) == 5.0


def test_tiergate_report_prints_the_per_model_table(ledger_url: str) -> None:
    import time

    now = time.time()
    recs = [
        LedgerRecord(
            ts=now - i,
            request_id=f"r{i}",
            policy="default",
            requested_model="auto",
            routed_model="mid" if i % 3 else "big",
            tier=1 if i % 3 else 2,
            prompt_tokens=10,
            completion_tokens=5,
            cost_usd=0.001 * (1 if i % 3 else 4),
            baseline_cost_usd=0.004,
            latency_ms=float(i),
        )
        for i in range(30)
    ]
    recs.append(LedgerRecord(ts=now - 3 * 86400, request_id="old", policy="default", requested_model="auto"))
    db = make_backend(ledger_url)
    db.migrate()
    db.insert(recs)
    db.close()
    run = [sys.executable, "-m", "gateway.cli", "report", "--ledger", ledger_url, "--since", "24h"]
    text = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert text.returncode == 0, text.stderr
    lines = {ln.split()[0]: ln.split() for ln in text.stdout.splitlines()[1:]}
    assert lines["mid"][2] == "20" and lines["big"][2] == "10" and lines["TOTAL"][2] == "30"
    out = subprocess.run([*run, "--format", "csv"], capture_output=True, text=True, timeout=120)
    rows = {r["model"]: r for r in csv.DictReader(io.StringIO(out.stdout))}
    assert float(rows["mid"]["cost_usd"]) == pytest.approx(0.02) and float(rows["big"]["cost_usd"]) == pytest.approx(
        0.04
    )
    assert float(rows["big"]["saved_usd"]) == pytest.approx(0.0) and float(rows["mid"]["saved_usd"]) == pytest.approx(
        0.06
    )
    bad = subprocess.run([*run[:-1], "yesterday"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "duration" in bad.stderr


def test_cascade_outcomes_per_draft_model(ledger_url: str) -> None:
    import time

    rnd, start = random.Random(3), time.time() - 1000
    recs, want = [], defaultdict(lambda: {"kept": 0, "escalated": 0, "draft_failed": 0, "conf": [], "cost": 0.0})
    for i in range(120):
        outcome = rnd.choice(["kept", "escalated", "draft_failed", None])
        draft = rnd.choice(["local", "mid"]) if outcome else None
        conf = None if outcome in (None, "draft_failed") or rnd.random() < 0.1 else rnd.random()
        cost = rnd.uniform(0, 1e-5) if outcome == "escalated" else 0.0
        recs.append(
            rec(
                start + i,
                f"c{i}",
                "careful",
                cascade=outcome,
                draft_model=draft,
                draft_confidence=conf,
                draft_cost_usd=cost,
            )
        )
        if outcome:
            w = want[draft]
            w[outcome] += 1
            w["cost"] += cost
            if conf is not None:
                w["conf"].append(conf)
    ledger = open_ledger(ledger_url)
    for r in recs:
        ledger.record(r)
    ledger.flush()
    got = {r["draft_model"]: r for r in report(ledger.reader, StatsQuery(start, start + 1000))["cascade"]}
    ledger.close()
    assert set(got) == set(want) == {"local", "mid"}
    for m, w in want.items():
        g = got[m]
        assert (g["kept"], g["escalated"], g["draft_failed"]) == (w["kept"], w["escalated"], w["draft_failed"])
        assert g["keep_rate"] == pytest.approx(w["kept"] / (w["kept"] + w["escalated"]), abs=1e-4)
        assert g["mean_confidence"] == pytest.approx(sum(w["conf"]) / len(w["conf"]), abs=1e-4)
        assert g["escalated_draft_cost_usd"] == pytest.approx(w["cost"], abs=1e-9)
    run = [sys.executable, "-m", "gateway.cli", "report", "--ledger", ledger_url, "--since", "1h"]
    text = subprocess.run(run, capture_output=True, text=True, timeout=120).stdout
    tail = text.split("cascade drafts\n", 1)[1].splitlines()
    printed = {ln.split()[0]: ln.split() for ln in tail[1:] if ln.strip() and not ln.startswith("-")}
    assert printed["local"][1:4] == [str(want["local"][k]) for k in ("kept", "escalated", "draft_failed")]


def test_key_usage_counts_what_the_limits_count(seeded: tuple[Any, list[LedgerRecord]]) -> None:
    ledger, recs = seeded
    limited = [
        LedgerRecord(
            ts=T0 + 10 * HOUR + i,
            request_id=f"l{i}",
            policy="default",
            requested_model="auto",
            status=429,
            error_type="requests",
            key_id="key-a",
        )
        for i in range(5)
    ]
    for r in limited:
        ledger.record(r)
    ledger.flush()
    recs = recs + limited
    for key in ("key-a", "key-b"):
        for req_since, spend_since in [(T0 + 10 * HOUR, T0), (T0 + 40 * HOUR, T0 + 20 * HOUR), (T0 + 99 * HOUR,) * 2]:
            mine = [r for r in recs if r.key_id == key]
            counted = [r.ts for r in mine if r.ts >= req_since and r.status != 429]
            got = key_usage(ledger.reader, key, req_since, spend_since)
            assert got.requests == len(counted)  # the limits' own refusals do not count as requests
            assert got.first_ts == (pytest.approx(min(counted)) if counted else None)
            toks = [r.prompt_tokens + r.completion_tokens for r in mine if r.ts >= req_since and r.status != 429]
            assert got.tokens == sum(toks)
            assert got.spent_usd == pytest.approx(sum(r.cost_usd for r in mine if r.ts >= spend_since), abs=1e-9)
    assert key_usage(ledger.reader, "key-nobody", T0, T0) == Usage()


def test_end_users_are_summed_and_filtered(ledger_url: str) -> None:
    ledger = open_ledger(ledger_url)
    people = [("alice", 3e-4), ("bob", 1e-4), ("alice", 2e-4), (None, 9e-4), ("carol", 1e-4), ("bob", 1e-4)]
    for i, (who, cost) in enumerate(people):
        ledger.record(
            rec(
                T0 + i,
                f"u{i}",
                routed_model="mid",
                prompt_tokens=10,
                completion_tokens=i,
                cost_usd=cost,
                baseline_cost_usd=1e-3,
                end_user=who,
            )
        )
    ledger.flush()
    q = StatsQuery(since=T0, until=T0 + HOUR)
    got = end_users(ledger.reader, q)
    assert [(u["end_user"], u["requests"], u["tokens"]) for u in got] == [
        ("alice", 2, 22),
        ("bob", 2, 26),
        ("carol", 1, 14),
    ]
    assert got[0]["cost_usd"] == pytest.approx(5e-4) and got[0]["saved_usd"] == pytest.approx(1.5e-3)
    assert end_users(ledger.reader, q, top=1) == got[:1]
    only_bob = report(ledger.reader, StatsQuery(since=T0, until=T0 + HOUR, end_user="bob"))
    assert only_bob["totals"]["requests"] == 2 and only_bob["filters"]["user"] == "bob"
    assert [u["end_user"] for u in only_bob["users"]] == ["bob"]
    ledger.close()
    run = [sys.executable, "-m", "gateway.cli", "report", "--ledger", ledger_url, "--since", "400d"]
    table = subprocess.run(run, capture_output=True, text=True, timeout=120, check=True).stdout
    assert "end users" in table and "alice" in table and "carol" in table
    alice = subprocess.run([*run, "--user", "alice", "--format", "json"], capture_output=True, text=True, check=True)
    assert json.loads(alice.stdout)["totals"]["requests"] == 2


def test_spend_per_tag_and_the_tag_filter(seeded: tuple[Any, list[LedgerRecord]]) -> None:
    ledger, recs = seeded
    q = StatsQuery(since=T0, until=T0 + 60 * HOUR)
    got = {t["tag"]: t for t in report(ledger.reader, q)["tags"]}
    for tag in ("team_a", "teamXa", "web"):
        rs = [r for r in recs if r.tags and f",{tag}," in r.tags]
        assert got[tag]["requests"] == len(rs), tag
        assert got[tag]["cost_usd"] == pytest.approx(sum(r.cost_usd for r in rs), abs=1e-9)
        assert got[tag]["tokens"] == sum(r.prompt_tokens + r.completion_tokens for r in rs)
        only = report(ledger.reader, StatsQuery(since=T0, until=T0 + 60 * HOUR, tag=tag))
        assert only["totals"]["requests"] == len(rs), tag  # team_a's filter does not take teamXa's records
    assert set(got) == {"team_a", "teamXa", "web"}


def test_export_requests_writes_every_record_in_the_window_page_by_page(ledger_url: str, tmp_path: Any) -> None:
    import time

    now = time.time()
    n = 2345  # more than two pages of 1,000
    recs = [
        rec(now - i, f"e{i}", routed_model="mid", tier=1, cost_usd=1e-6 * i, tags=",team-a,beta," if i % 2 else None)
        for i in range(n)
    ]
    recs.append(rec(now - 40 * 86400, "too-old"))
    db = make_backend(ledger_url)
    db.migrate()
    db.insert(recs)
    db.close()
    base = [sys.executable, "-m", "gateway.cli", "export-requests", "--ledger", ledger_url]
    out = tmp_path / "requests.csv"
    done = subprocess.run([*base, "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and f"wrote {n} requests" in done.stderr, done.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == n and len({r["request_id"] for r in rows}) == n and rows[0]["request_id"] == "e0"
    assert rows[1]["tags"] == "team-a,beta" and "prompt" not in rows[0]
    jsonl = tmp_path / "requests.jsonl"
    subprocess.run([*base, "--out", str(jsonl), "--format", "jsonl", "--since", "1h"], check=True, timeout=120)
    lines = [json.loads(x) for x in jsonl.read_text().splitlines()]
    assert len(lines) == n  # every record is within the last hour (one a second)
    assert lines[-1]["request_id"] == f"e{n - 1}" and lines[1]["tags"] == ["team-a", "beta"]


def test_judgements_are_averaged_per_model_beside_the_cost(ledger_url: str) -> None:
    from gateway.ledger import feedback

    db = make_backend(ledger_url)
    db.migrate()
    try:
        db.insert(
            [
                rec(T0 + 10, "a", routed_model="small", tier=0, key_id="key-1"),
                rec(T0 + 20, "b", routed_model="small", tier=0),
                rec(T0 + 30, "c", routed_model="big", tier=2),
                rec(T0 - 3 * 86400, "old", routed_model="small", tier=0),
            ]
        )
        for rid, score in (("a", 1.0), ("a", 0.5), ("b", 0.0), ("c", 1.0), ("old", 0.0)):
            feedback.add(db, rid, score, "judge:big")
        q = StatsQuery(since=T0, until=T0 + HOUR)
        r = report(db, q)
        by = {m["model"]: m for m in r["models"]}
        assert (by["small"]["judged"], by["small"]["mean_judgement"]) == (3, 0.5)  # the old one is out of range
        assert (by["big"]["judged"], by["big"]["mean_judgement"]) == (1, 1.0)
        assert (r["totals"]["judged"], r["totals"]["mean_judgement"]) == (4, 0.625)
        keyed = report(db, StatsQuery(since=T0, until=T0 + HOUR, key_id="key-1"))["models"]
        assert [(m["model"], m["judged"], m["mean_judgement"]) for m in keyed] == [("small", 2, 0.75)]
    finally:
        db.close()
