"""Prometheus metrics for `GET /metrics`, fed from the same records as the ledger, in a registry per app.

Per process: with `--workers N` each worker exposes its own counters (scrape each, or sum in Prometheus); the
ledger, not these counters, is the record of account.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from gateway.ledger import LedgerRecord

# Seconds. A cache hit is a few ms, a local model tens of ms to seconds, a frontier model seconds to a minute.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, spooled: Callable[[], float] | None = None) -> None:
        r = CollectorRegistry()
        base = ["model", "tier", "policy"]
        self._requests = Counter(
            "tiergate_requests",
            "Requests by routed model, outcome and cache status",
            [*base, "status", "cache"],
            registry=r,
        )
        self._cost = Counter("tiergate_cost_usd", "Spend in USD", base, registry=r)
        self._baseline = Counter(
            "tiergate_baseline_cost_usd", "What the policy's baseline model would have cost, USD", base, registry=r
        )
        self._tokens = Counter("tiergate_tokens", "Tokens by direction", [*base, "direction"], registry=r)
        self._cache_hits = Counter("tiergate_cache_hits", "Responses served from the cache", base, registry=r)
        self._latency = Histogram(
            "tiergate_request_latency_seconds",
            "Gateway latency of answered requests",
            base,
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self._ttft = Histogram(
            "tiergate_time_to_first_token_seconds",
            "Streams: time to the first chunk",
            base,
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        if spooled is not None:  # read at scrape time
            Gauge(
                "tiergate_ledger_spooled_records", "Ledger records waiting in the local spool", registry=r
            ).set_function(spooled)
        self._registry = r
        # Labelled children, looked up once per label set: `labels()` costs more than the increments themselves.
        self._answered: dict[tuple[str, str, str], tuple[Any, ...]] = {}
        self._outcomes: dict[tuple[str, str, str, int, str], Any] = {}

    def _children(self, labels: tuple[str, str, str]) -> tuple[Any, ...]:
        c = self._answered.get(labels)
        if c is None:
            c = self._answered[labels] = (
                self._cost.labels(*labels),
                self._baseline.labels(*labels),
                self._tokens.labels(*labels, "prompt"),
                self._tokens.labels(*labels, "completion"),
                self._cache_hits.labels(*labels),
                self._latency.labels(*labels),
                self._ttft.labels(*labels),
            )
        return c

    def record(self, rec: LedgerRecord) -> None:
        labels = (rec.routed_model or "", "" if rec.tier is None else str(rec.tier), rec.policy)
        key = (*labels, rec.status, rec.cache)
        outcome = self._outcomes.get(key)
        if outcome is None:
            outcome = self._outcomes[key] = self._requests.labels(*labels, str(rec.status), rec.cache)
        outcome.inc()
        if rec.status >= 400:
            return
        cost, baseline, prompt, completion, hits, latency, ttft = self._children(labels)
        cost.inc(rec.cost_usd)
        baseline.inc(rec.baseline_cost_usd)
        prompt.inc(rec.prompt_tokens)
        completion.inc(rec.completion_tokens)
        if rec.cache == "hit":
            hits.inc()
        latency.observe(rec.latency_ms / 1000.0)
        if rec.ttft_ms is not None:
            ttft.observe(rec.ttft_ms / 1000.0)

    def render(self) -> bytes:
        return generate_latest(self._registry)
