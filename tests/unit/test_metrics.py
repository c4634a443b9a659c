"""The /metrics exposition, read back with Prometheus's own text parser: counts, sums and histogram buckets."""

from __future__ import annotations

import os
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from gateway.ledger import LedgerRecord
from gateway.metrics import Metrics
from gateway.metrics_share import SharedSnapshots


def _rec(**kw: object) -> LedgerRecord:
    base: dict[str, object] = {"ts": 0.0, "request_id": "r", "policy": "p", "requested_model": "auto"}
    return LedgerRecord(**(base | kw))  # type: ignore[arg-type]


def _samples(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(m.render().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_counters_histograms_and_failures_are_exposed_per_label_set() -> None:
    m = Metrics(spooled=lambda: 3.0)
    small = {"routed_model": "small", "tier": 0}
    m.record(_rec(**small, cost_usd=0.25, baseline_cost_usd=1.0, prompt_tokens=10, completion_tokens=4, latency_ms=5.0))
    m.record(_rec(**small, cache="hit", prompt_tokens=10, completion_tokens=4, latency_ms=300.0, ttft_ms=2.0))
    m.record(_rec(status=404))
    s = _samples(m)
    lab = (("model", "small"), ("policy", "p"), ("tier", "0"))
    assert s[("tiergate_requests_total", tuple(sorted([*lab, ("status", "200"), ("cache", "bypass")])))] == 1
    assert s[("tiergate_requests_total", tuple(sorted([*lab, ("status", "200"), ("cache", "hit")])))] == 1
    failed = (("cache", "bypass"), ("model", ""), ("policy", "p"), ("status", "404"), ("tier", ""))
    assert s[("tiergate_requests_total", failed)] == 1
    assert s[("tiergate_cost_usd_total", lab)] == 0.25
    assert s[("tiergate_baseline_cost_usd_total", lab)] == 1.0
    assert s[("tiergate_cache_hits_total", lab)] == 1
    assert s[("tiergate_tokens_total", tuple(sorted([*lab, ("direction", "prompt")])))] == 20
    assert s[("tiergate_tokens_total", tuple(sorted([*lab, ("direction", "completion")])))] == 8
    # 5 ms sits exactly on the first bound (le is inclusive); 300 ms lands in the 0.5 s bucket.
    bucket = "tiergate_request_latency_seconds_bucket"
    assert s[(bucket, tuple(sorted([*lab, ("le", "0.005")])))] == 1
    assert s[(bucket, tuple(sorted([*lab, ("le", "0.25")])))] == 1
    assert s[(bucket, tuple(sorted([*lab, ("le", "0.5")])))] == 2
    assert s[(bucket, tuple(sorted([*lab, ("le", "+Inf")])))] == 2
    assert s[("tiergate_request_latency_seconds_count", lab)] == 2
    assert abs(s[("tiergate_request_latency_seconds_sum", lab)] - 0.305) < 1e-9
    assert s[("tiergate_time_to_first_token_seconds_count", lab)] == 1
    assert s[("tiergate_ledger_spooled_records", ())] == 3.0
    # Failed requests add no cost or latency series of their own.
    assert not any(k[0].startswith("tiergate_cost") and ("model", "") in k[1] for k in s)


def test_workers_sharing_a_folder_each_answer_for_all(tmp_path: Path) -> None:
    a = Metrics(share=SharedSnapshots(tmp_path, "1-a"))
    b = Metrics(share=SharedSnapshots(tmp_path, "2-b"))
    small = {"routed_model": "small", "tier": 0, "cost_usd": 0.5, "prompt_tokens": 3, "latency_ms": 5.0}
    a.record(_rec(**small))
    b.record(_rec(**small))
    b.record(_rec(**small, cache="hit"))
    lab = (("model", "small"), ("policy", "p"), ("tier", "0"))
    b.publish()  # b's periodic write; a's scrape then sums a's live counts with it
    for m in (a, b):
        s = _samples(m)
        assert s[("tiergate_requests_total", tuple(sorted([*lab, ("status", "200"), ("cache", "bypass")])))] == 2
        assert s[("tiergate_requests_total", tuple(sorted([*lab, ("status", "200"), ("cache", "hit")])))] == 1
        assert s[("tiergate_cost_usd_total", lab)] == 1.5
        assert s[("tiergate_request_latency_seconds_count", lab)] == 3
    # A scrape publishes the scraped worker's own counts: what a records now, b sees on its next scrape.
    a.record(_rec(**small))
    _samples(a)
    assert _samples(b)[("tiergate_request_latency_seconds_count", lab)] == 4
    # A worker that is gone leaves its last counts in the sums: counters never go backwards.
    c = Metrics(share=SharedSnapshots(tmp_path, "3-c"))
    assert _samples(c)[("tiergate_request_latency_seconds_count", lab)] == 4


def test_an_unreadable_snapshot_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "9-x.json").write_text("{not json")
    m = Metrics(share=SharedSnapshots(tmp_path, "1-a"))
    m.record(_rec(routed_model="small", tier=0))
    assert (
        _samples(m)[("tiergate_request_latency_seconds_count", (("model", "small"), ("policy", "p"), ("tier", "0")))]
        == 1
    )


def test_a_vanished_folder_costs_the_sums_not_the_scrape(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    m = Metrics(share=SharedSnapshots(folder, "1-a"))
    m.record(_rec(routed_model="small", tier=0))
    folder.rmdir()  # e.g. a /tmp cleaner; nothing was published yet, so it is empty
    assert (
        _samples(m)[("tiergate_request_latency_seconds_count", (("model", "small"), ("policy", "p"), ("tier", "0")))]
        == 1
    )


def test_spooled_records_are_summed_over_live_workers_only(tmp_path: Path) -> None:
    a = Metrics(spooled=lambda: 2.0, share=SharedSnapshots(tmp_path, "1-a"))
    b = Metrics(spooled=lambda: 5.0, share=SharedSnapshots(tmp_path, "2-b"))
    gone = Metrics(spooled=lambda: 7.0, share=SharedSnapshots(tmp_path, "3-c"))
    gone.record(_rec(routed_model="small", tier=0))
    b.publish()
    gone.publish()
    stale = time.time() - 60
    os.utime(tmp_path / "3-c.json", (stale, stale))  # a worker that stopped publishing a minute ago
    s = _samples(a)
    assert s[("tiergate_ledger_spooled_records", ())] == 7.0  # a's 2 and b's 5, not the gone worker's frozen 7
    assert s[("tiergate_request_latency_seconds_count", (("model", "small"), ("policy", "p"), ("tier", "0")))] == 1


def test_upstream_calls_in_flight_are_summed_over_live_workers(tmp_path: Path) -> None:
    a = Metrics(share=SharedSnapshots(tmp_path, "1-a"), inflight=lambda: {"local": [2, 1], "big": [0, 0]})
    b = Metrics(share=SharedSnapshots(tmp_path, "2-b"), inflight=lambda: {"local": [3, 0], "mid#2": [1, 0]})
    gone = Metrics(share=SharedSnapshots(tmp_path, "3-c"), inflight=lambda: {"local": [9, 9]})
    b.publish()
    gone.publish()
    stale = time.time() - 60
    os.utime(tmp_path / "3-c.json", (stale, stale))
    s = _samples(a)
    assert s[("tiergate_upstream_calls_in_flight", (("server", "local"),))] == 5
    assert s[("tiergate_upstream_calls_waiting", (("server", "local"),))] == 1
    assert s[("tiergate_upstream_calls_in_flight", (("server", "mid#2"),))] == 1
    assert s[("tiergate_upstream_calls_in_flight", (("server", "big"),))] == 0  # idle, still there
