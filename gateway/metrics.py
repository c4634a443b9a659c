"""Prometheus metrics for `GET /metrics`, fed from the same records as the ledger, in a registry per app.

A request only adds to plain numbers here; they become Prometheus families when /metrics is scraped. The
client library's own Counter and Histogram take a lock and several calls per increment: at one record per
request that was ~15 us of a ~0.1 ms cache hit (docs/benchmarks.md), paid on the hot path for a page that is read
every few seconds at most.

With `--workers N` the workers' counters are summed at scrape time through snapshot files
(gateway/metrics_share.py), so any worker answers for all; the ledger, not these counters, is the record of
account.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from gateway.ledger import LedgerRecord
from gateway.metrics_share import SharedSnapshots

log = logging.getLogger("tiergate.metrics")

# Seconds. A cache hit is a few ms, a local model tens of ms to seconds, a frontier model seconds to a minute.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_BASE = ["model", "tier", "policy"]
# A worker's snapshot older than this is from a worker that is gone: its counters stay in the sums (they happened),
# its gauges do not (its last value would never come down, even once the others have replayed its spool).
_LIVE_S = 5.0

Labels = tuple[str, str, str]


class Histogram:
    """Counts per bucket (not cumulative; the last one is +Inf) and the sum, as Prometheus's histogram needs."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(_LATENCY_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(_LATENCY_BUCKETS, seconds)] += 1  # first bucket whose bound is >= the value
        self.total += seconds

    def add(self, counts: list[int], total: float) -> None:
        self.counts = [a + b for a, b in zip(self.counts, counts, strict=True)]
        self.total += total

    def cumulative(self) -> list[tuple[str, float]]:
        out, running = [], 0
        for bound, n in zip([*map(str, _LATENCY_BUCKETS), "+Inf"], self.counts, strict=True):
            running += n
            out.append((bound, float(running)))
        return out


class Answered:
    """The sums kept for answered requests (status < 400) of one (model, tier, policy)."""

    __slots__ = ("baseline", "completion", "cost", "hits", "latency", "prompt", "ttft")

    def __init__(self) -> None:
        self.cost = self.baseline = 0.0
        self.prompt = self.completion = self.hits = 0
        self.latency = Histogram()
        self.ttft = Histogram()

    def dump(self) -> list[Any]:
        """These sums as JSON values, in the order `add` reads them."""
        lat, ttft = self.latency, self.ttft
        return [
            self.cost,
            self.baseline,
            self.prompt,
            self.completion,
            self.hits,
            lat.counts,
            lat.total,
            ttft.counts,
            ttft.total,
        ]

    def add(self, dumped: list[Any]) -> None:
        """Add another worker's `dump()` to these sums."""
        cost, baseline, prompt, completion, hits, lat_counts, lat_total, ttft_counts, ttft_total = dumped
        self.cost += cost
        self.baseline += baseline
        self.prompt += prompt
        self.completion += completion
        self.hits += hits
        self.latency.add(lat_counts, lat_total)
        self.ttft.add(ttft_counts, ttft_total)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(
        self,
        spooled: Callable[[], float] | None = None,
        share: SharedSnapshots | None = None,
        cooldowns: Callable[[], dict[str, int]] | None = None,
        inflight: Callable[[], dict[str, list[int]]] | None = None,
        cooling: Callable[[], list[list[Any]]] | None = None,
    ) -> None:
        self._outcomes: dict[tuple[str, str, str, str, str], int] = {}
        self._answered: dict[Labels, Answered] = {}
        self.share = share
        self._spooled = spooled  # read at scrape time
        self._cooldowns = cooldowns  # likewise: cooldowns begun per model
        self._inflight = inflight  # likewise: upstream calls in flight and waiting, per server
        self._cooling = cooling  # the cooldowns this worker began, passed to the others (gateway/cooldown.py)
        r = CollectorRegistry()
        r.register(self)  # a collector is anything with collect()
        self._registry = r

    def record(self, rec: LedgerRecord) -> None:
        labels = (rec.routed_model or "", "" if rec.tier is None else str(rec.tier), rec.policy)
        key = (*labels, str(rec.status), rec.cache)
        self._outcomes[key] = self._outcomes.get(key, 0) + 1
        if rec.status >= 400:
            return
        a = self._answered.get(labels)
        if a is None:
            a = self._answered[labels] = Answered()
        a.cost += rec.cost_usd
        a.baseline += rec.baseline_cost_usd
        a.prompt += rec.prompt_tokens
        a.completion += rec.completion_tokens
        if rec.cache == "hit":
            a.hits += 1
        a.latency.observe(rec.latency_ms / 1000.0)
        if rec.ttft_ms is not None:
            a.ttft.observe(rec.ttft_ms / 1000.0)

    def snapshot(self) -> dict[str, Any]:
        """This process's counts as plain JSON values (gateway/metrics_share.py)."""
        return {
            "outcomes": [[*k, n] for k, n in list(self._outcomes.items())],
            "answered": [[*k, a.dump()] for k, a in list(self._answered.items())],
            "spooled": self._spooled() if self._spooled is not None else 0.0,
            "cooldowns": self._cooldowns() if self._cooldowns is not None else {},
            "inflight": self._inflight() if self._inflight is not None else {},
            "cooling": self._cooling() if self._cooling is not None else [],
        }

    def publish(self) -> dict[str, Any]:
        """Take this worker's snapshot and write it for the others' scrapes (written only across workers); returns
        it. A folder that is full or gone costs the other workers' scrapes this worker's counts, never a failed
        scrape or request."""
        snap = self.snapshot()
        if self.share is not None:
            try:
                self.share.write(snap)
            except OSError as e:
                log.warning("could not publish metrics to %s: %s", self.share.folder, e)
        return snap

    def peer_cooldowns(self) -> list[list[Any]]:
        """The cooldowns the other live workers began (each worker's `shared()`), from their latest snapshots."""
        if self.share is None:
            return []
        return [c for snap, age in self.share.peers() if age < _LIVE_S for c in snap.get("cooling", [])]

    def _totals(
        self, mine: dict[str, Any]
    ) -> tuple[
        dict[tuple[str, ...], int], dict[tuple[str, ...], Answered], float, dict[str, int], dict[str, list[int]]
    ]:
        """This process's snapshot plus, across workers, the others' latest ones; the records spooled now by the
        live workers; the cooldowns begun per model; and the live workers' calls in flight and waiting per server."""
        outcomes: dict[tuple[str, ...], int] = {}
        answered: dict[tuple[str, ...], Answered] = {}
        cooldowns: dict[str, int] = {}
        inflight: dict[str, list[int]] = {}
        spooled = 0.0
        for snap, age in [(mine, 0.0), *(self.share.peers() if self.share is not None else [])]:
            for *key, n in snap["outcomes"]:
                outcomes[tuple(key)] = outcomes.get(tuple(key), 0) + n
            for *key, dumped in snap["answered"]:
                answered.setdefault(tuple(key), Answered()).add(dumped)
            for model, n in snap.get("cooldowns", {}).items():
                cooldowns[model] = cooldowns.get(model, 0) + n
            if age < _LIVE_S:
                spooled += float(snap.get("spooled", 0.0))
                for server, (n, waiting) in snap.get("inflight", {}).items():
                    total = inflight.setdefault(server, [0, 0])
                    total[0], total[1] = total[0] + n, total[1] + waiting
        return outcomes, answered, spooled, cooldowns, inflight

    def collect(self) -> Iterator[Metric]:
        """The families, from a snapshot of the label sets (a scrape may run beside a request being recorded)."""
        # One snapshot serves this scrape and, written out, the other workers' next ones.
        outcomes, answered_by, spooled, cooldowns, inflight = self._totals(self.publish())
        if self._spooled is not None:
            yield GaugeMetricFamily(
                "tiergate_ledger_spooled_records", "Ledger records waiting in the local spools", value=spooled
            )
        if self._cooldowns is not None:
            doc = "Cooldowns begun: times routing stopped using a model after repeated failures"
            cool = CounterMetricFamily("tiergate_model_cooldowns", doc, labels=["model"])
            for model, n in sorted(cooldowns.items()):
                cool.add_metric([model], n)
            yield cool
        if self._inflight is not None:
            doc = "Upstream calls in flight now, per server (a model's name, or name#i for one of its deployments)"
            now = GaugeMetricFamily("tiergate_upstream_calls_in_flight", doc, labels=["server"])
            doc = "Calls waiting for a slot on a server at its max_concurrency"
            queued = GaugeMetricFamily("tiergate_upstream_calls_waiting", doc, labels=["server"])
            for server, (n, waiting) in sorted(inflight.items()):
                now.add_metric([server], n)
                queued.add_metric([server], waiting)
            yield now
            yield queued
        doc = "Requests by routed model, outcome and cache status"
        requests = CounterMetricFamily("tiergate_requests", doc, labels=[*_BASE, "status", "cache"])
        for key, n in outcomes.items():
            requests.add_metric(list(key), n)
        yield requests
        answered = list(answered_by.items())
        sums: list[tuple[str, str, Callable[[Answered], float]]] = [
            ("tiergate_cost_usd", "Spend in USD", lambda a: a.cost),
            ("tiergate_baseline_cost_usd", "What the baseline model would have cost, USD", lambda a: a.baseline),
            ("tiergate_cache_hits", "Responses served from the cache", lambda a: a.hits),
        ]
        for name, doc, value in sums:
            family = CounterMetricFamily(name, doc, labels=_BASE)
            for labels, a in answered:
                family.add_metric(list(labels), value(a))
            yield family
        tokens = CounterMetricFamily("tiergate_tokens", "Tokens by direction", labels=[*_BASE, "direction"])
        for labels, a in answered:
            tokens.add_metric([*labels, "prompt"], a.prompt)
            tokens.add_metric([*labels, "completion"], a.completion)
        yield tokens
        hists: list[tuple[str, str, Callable[[Answered], Histogram]]] = [
            ("tiergate_request_latency_seconds", "Gateway latency of answered requests", lambda a: a.latency),
            ("tiergate_time_to_first_token_seconds", "Streams: time to the first chunk", lambda a: a.ttft),
        ]
        for name, doc, hist in hists:
            family_h = HistogramMetricFamily(name, doc, labels=_BASE)
            for labels, a in answered:
                h = hist(a)
                family_h.add_metric(list(labels), h.cumulative(), h.total)
            yield family_h

    def render(self) -> bytes:
        return generate_latest(self._registry)
