"""create_app: builds one gateway (services on app.state, routes, error handlers); no module-level state."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp

from classifiers.base import Encoder
from classifiers.route_examples import RouteExamples
from gateway import cors, errors, openapi
from gateway.activity import Activity
from gateway.alerts import Alerter, BudgetWatch, cooldown_alert
from gateway.auth import Gate
from gateway.budgets import ModelBudgets
from gateway.cache import CacheStore, MemoryStore, RedisStore
from gateway.classify import ClassifierService, load_model
from gateway.cooldown import Cooldowns
from gateway.deps import AppServices
from gateway.encoders import make_encoder
from gateway.end_users import EndUserBudgets
from gateway.front import Front
from gateway.inflight import InFlight
from gateway.ledger import Ledger, LedgerUnavailable, open_ledger
from gateway.ledger.alert_claims import claim
from gateway.ledger.retention import cutoff
from gateway.ledger.stats import end_user_spend, key_usage, model_spend
from gateway.limits import KeyLimits
from gateway.logs import LogFormat, formatter
from gateway.metrics import Metrics
from gateway.metrics_share import SharedSnapshots
from gateway.pipeline import AssessFn, ChatPipeline, ScoreFn
from gateway.policy_file import load
from gateway.provider import reference_prices, unavailable_models
from gateway.recorder import Recorder, Sink
from gateway.reload import PolicyWatcher
from gateway.request_log import RequestLog
from gateway.response_cache import ChatCache
from gateway.routes import (
    dashboard,
    embeddings,
    explain,
    feedback,
    health,
    keys,
    metrics,
    model_status,
    models,
    requests_log,
    responses,
    stats,
)
from gateway.settings import Settings
from gateway.transport import Transport, needs_litellm
from router.durations import duration_s
from router.policy import TiergateConfig
from router.pricing import PriceTable

log = logging.getLogger("tiergate")


def price_table(config: TiergateConfig) -> PriceTable:
    table = PriceTable(config, reference_prices())
    if table.unpriced:
        log.warning("no price in the policy or litellm's table for %s: their cost is recorded as 0", table.unpriced)
    return table


def warn_cut_timeouts(config: TiergateConfig, cap_s: float) -> list[str]:
    """Logs, and returns, the models whose own timeouts `TIERGATE_UPSTREAM_TIMEOUT_S` (`cap_s`) cuts short."""
    cut = [m.name for m in config.models if max(m.timeout_s, m.first_token_timeout_s or 0.0) > cap_s]
    if cut:
        log.warning(
            "TIERGATE_UPSTREAM_TIMEOUT_S=%g cuts short the timeout_s of %s: their calls end at %g s", cap_s, cut, cap_s
        )
    return cut


def build_services(settings: Settings, config: TiergateConfig | None = None) -> AppServices:
    cfg = config or load(settings.config)
    warn_cut_timeouts(cfg, settings.upstream_timeout_s)
    encoder = make_encoder(settings.encoder)
    activity = Activity()
    classifier = ClassifierService(
        encoder,
        load_model(settings.classifier_artifact),
        settings.classifier_threads,
        settings.classifier_max_batch,
        settings.classifier_max_wait_ms,
        activity.idle if settings.classifier_inline_when_idle else None,
    )
    provider = Transport(
        os.environ,
        settings.upstream_timeout_s,
        preload_litellm=needs_litellm(cfg),
        max_connections=settings.upstream_max_connections,
    )
    ledger = open_ledger(settings.ledger_url or settings.ledger_path, settings.ledger_spool_dir)
    store: CacheStore = (
        RedisStore(settings.cache_url, settings.cache_timeout_ms)
        if settings.cache_url
        else MemoryStore(settings.cache_max_entries)
    )
    # The classifier's identity keys cached routed answers: a retrained classifier may route them differently.
    router_id = f"{settings.encoder}:{hashlib.sha256(settings.classifier_artifact.read_bytes()).hexdigest()[:16]}"
    cache = ChatCache(store, cfg, classifier.embed_one, encoder.dim, router_id)
    # Named by pid and a random suffix: a later worker that happens to get a dead one's pid must not overwrite the
    # dead one's last counts.
    me = f"{os.getpid()}-{os.urandom(4).hex()}"
    share = SharedSnapshots(settings.metrics_dir, me) if settings.metrics_dir else None
    sinks: tuple[Sink, ...] = (RequestLog(),) if settings.request_log else ()
    svc = wire_services(
        cfg, classifier, provider, ledger, cache, activity=activity, metrics_share=share, extra_sinks=sinks
    )
    if svc.pipeline.unavailable:
        log.warning("unavailable (API key variable unset): %s", sorted(svc.pipeline.unavailable))
    return svc


def wire_services(
    cfg: TiergateConfig,
    classifier: ClassifierService,
    provider: Transport,
    ledger: Ledger,
    cache: ChatCache,
    score: ScoreFn | None = None,
    activity: Activity | None = None,
    metrics_share: SharedSnapshots | None = None,
    extra_sinks: tuple[Sink, ...] = (),
) -> AppServices:
    """Connect the parts: every finished request's record goes to the ledger, the metrics and the key limits (and
    `extra_sinks`)."""
    cooldowns, inflight = Cooldowns(cfg.cooldown), InFlight()
    alerter = Alerter(webhook_url(cfg), partial(claim, ledger.reader))
    meters = Metrics(
        lambda: float(ledger.status()["spooled"]),
        metrics_share,
        cooldowns.started,
        inflight.gauges,
        cooldowns.shared,
    )
    # With a score function given (a test's seam), the classifier is not asked, and no policy's routes are read.
    assess = Assessing(classifier.assess, classifier.encoder) if score is None else None
    limits, recorder, pipeline = _from_policy(
        cfg,
        ledger,
        meters,
        provider,
        score or classifier.score,
        cache,
        cooldowns,
        inflight,
        alerter,
        extra_sinks,
        assess,
    )
    gate = Gate(cfg.keys)
    return AppServices(
        cfg,
        classifier,
        provider,
        ledger,
        pipeline,
        meters,
        recorder,
        limits,
        gate,
        activity or Activity(),
        alerter,
        extra_sinks,
    )


def webhook_url(cfg: TiergateConfig) -> str | None:
    """The alert webhook's URL, from the variable the policy names (None: alerts go to the log only)."""
    name = cfg.alerts.webhook_env
    return (os.environ.get(name) or None) if name else None


def _from_policy(
    cfg: TiergateConfig,
    ledger: Ledger,
    meters: Metrics,
    provider: Transport,
    score: ScoreFn,
    cache: ChatCache,
    cooldowns: Cooldowns,
    inflight: InFlight,
    alerter: Alerter,
    extra_sinks: tuple[Sink, ...] = (),
    assess: Assessing | None = None,
    previous: ChatPipeline | None = None,
) -> tuple[KeyLimits, Recorder, ChatPipeline]:
    """The parts that the policy file shapes, around the ones it does not (ledger, metrics, upstreams, classifier).
    `previous`: the pipeline this one replaces, whose route examples are kept where a policy's are unchanged."""
    alerter.url = webhook_url(cfg)
    watch = BudgetWatch(alerter, cfg.alerts.budgets_at)
    limits = KeyLimits(cfg.keys, partial(key_usage, ledger.reader), watch=watch)
    budgets = ModelBudgets(cfg.models, partial(model_spend, ledger.reader), watch=watch)
    cooldowns.on_start = (
        (lambda server, s, err: alerter.emit(cooldown_alert(server, s, err, time.time())))
        if cfg.alerts.cooldowns
        else None
    )
    end_users = EndUserBudgets(cfg.end_user_budget, partial(end_user_spend, ledger.reader))
    # Limits and budgets see finished requests only if some are set: otherwise every record would pay for a no-op.
    recorder = Recorder(ledger, meters, *(s for s in (limits, budgets, end_users) if s.active), *extra_sinks)
    unavailable = unavailable_models(cfg.models, os.environ)
    cooldowns.settings = cfg.cooldown
    pipeline = ChatPipeline(
        cfg,
        price_table(cfg),
        score,
        provider,
        recorder,
        unavailable,
        cache,
        cooldowns,
        os.environ,
        budgets,
        inflight,
        end_users,
        ledger.add_feedback,
        assess.fn if assess is not None else None,
        route_examples(cfg, assess.encoder, previous) if assess is not None else None,
    )
    return limits, recorder, pipeline


@dataclass(frozen=True)
class Assessing:
    """The classifier's score-with-embedding, and its encoder for the policies' route examples."""

    fn: AssessFn
    encoder: Encoder


def route_examples(cfg: TiergateConfig, encoder: Encoder, previous: ChatPipeline | None) -> dict[str, RouteExamples]:
    """Each policy's route examples, embedded once however many policies share them (the shipped file gives all three
    the same); a reload embeds again only examples the previous file did not have, since it runs on the event loop
    (a reload is applied there, all at once)."""
    known: dict[tuple[tuple[str, ...], ...], RouteExamples] = {}
    if previous is not None:
        for name, embedded in previous.route_examples.items():
            known[tuple(tuple(r.examples) for r in previous.config.policies[name].routes)] = embedded
    out: dict[str, RouteExamples] = {}
    for name, policy in cfg.policies.items():
        if policy.routes:
            texts = tuple(tuple(r.examples) for r in policy.routes)
            if texts not in known:
                known[texts] = RouteExamples.embed(encoder, texts)
            out[name] = known[texts]
    return out


def rewire(svc: AppServices, cfg: TiergateConfig) -> None:
    """Swap in a reloaded policy file. Synchronous, so on the event loop no request sees half of it; requests in
    flight finish with the parts they started with. Per-key counts are read again from the ledger."""
    old = svc.pipeline
    limits, recorder, pipeline = _from_policy(
        cfg,
        svc.ledger,
        svc.metrics,
        svc.provider,
        old.score,
        old.cache.reconfigured(cfg),
        old.cooldowns,
        old.deployments.inflight,
        svc.alerter or Alerter(None, lambda key: True),
        svc.extra_sinks,
        Assessing(old.assess, svc.classifier.encoder) if old.assess is not None else None,
        old,
    )
    svc.config, svc.limits, svc.recorder, svc.pipeline, svc.gate = cfg, limits, recorder, pipeline, Gate(cfg.keys)
    if pipeline.unavailable:
        log.warning("unavailable (API key variable unset): %s", sorted(pipeline.unavailable))


async def _prune_ledger(svc: AppServices, retention_s: float, every_s: float) -> None:
    """Delete the records the retention period lets go, at start and then every `every_s`, off the event loop.
    Each worker does it (deleting what another already deleted costs one indexed query)."""
    while True:
        try:
            before = cutoff(time.time(), retention_s, svc.config)  # the current policy's budget windows
            if n := await asyncio.to_thread(svc.ledger.prune, before):
                log.info(
                    "ledger retention: deleted %d records from before %s",
                    n,
                    time.strftime("%F %T", time.gmtime(before)),
                )
        except LedgerUnavailable as e:
            log.warning("ledger retention: %s; trying again in %gs", e, every_s)
        await asyncio.sleep(every_s)


async def _publish_metrics(svc: AppServices, every_s: float = 1.0) -> None:
    """Keep this worker's metrics snapshot at most `every_s` old for the other workers' scrapes, and take up the
    cooldowns the other workers began (gateway/cooldown.py). A few KB of JSON a second each way, on the loop:
    cheaper than the thread hand-off that would move it off."""
    while True:
        await asyncio.sleep(every_s)
        svc.metrics.publish()
        svc.pipeline.cooldowns.adopt(svc.metrics.peer_cooldowns())


def create_app(settings: Settings | None = None, services: AppServices | None = None) -> ASGIApp:
    """With `settings` given, the app watches `settings.config` and reloads it (gateway/reload.py), so `services`,
    if also given, must have been built from that file."""
    watcher = None
    if settings is not None and settings.config_poll_s > 0:
        watcher = PolicyWatcher(settings.config, lambda cfg: rewire(svc, cfg), settings.config_poll_s)
        watcher.start()  # before building: a change made while the classifier loads is picked up, not missed
    settings = settings or Settings()
    svc = services or build_services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        publisher = asyncio.create_task(_publish_metrics(svc)) if svc.metrics.share is not None else None
        reloader = asyncio.create_task(watcher.run()) if watcher is not None else None
        alerting = asyncio.create_task(svc.alerter.run()) if svc.alerter is not None else None
        pruner = (
            asyncio.create_task(
                _prune_ledger(svc, duration_s(settings.ledger_retention), settings.ledger_prune_every_s)
            )
            if settings.ledger_retention
            else None
        )
        yield
        await _unwound(svc.activity)
        if alerting is not None:
            alerting.cancel()
        if pruner is not None:
            pruner.cancel()
        if reloader is not None:
            reloader.cancel()
        if publisher is not None:
            publisher.cancel()
            svc.metrics.publish()  # this worker's final counts stay in the sums
        await svc.pipeline.cache.drain()
        if svc.pipeline.cache.store is not None:
            await svc.pipeline.cache.store.close()
        await svc.provider.close()
        svc.ledger.close()  # drains the queue: a clean shutdown loses no record
        svc.classifier.close()

    app = FastAPI(title="Tiergate", version="0.1.0", lifespan=lifespan)
    app.state.services = svc
    errors.install(app)
    for r in (
        embeddings.router,
        explain.router,
        feedback.router,
        models.router,
        health.router,
        stats.router,
        keys.router,
        requests_log.router,
        model_status.router,
        responses.router,
        metrics.router,
        dashboard.router,
    ):
        app.include_router(r)
    app.mount("/static", StaticFiles(directory=dashboard.STATIC_DIR), name="static")
    app.openapi = lambda: openapi.build(app)  # type: ignore[method-assign]
    return cors.with_cors(Front(app), cors.origins(settings.cors_origins))


async def _unwound(activity: Activity, limit_s: float = 5.0) -> None:
    """Requests uvicorn cancelled at shutdown (TIERGATE_SHUTDOWN_GRACE_S) unwind over the next turns of the loop,
    a stream's through its task group, queueing their records as they go: wait for them before the ledger drains,
    or their records would come after it (a stream's did)."""
    deadline = time.monotonic() + limit_s
    while activity.active > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


def settle_heap() -> None:
    """Once a serving process has built its app: collect the start-up garbage, then move every object that is left
    (modules, the classifier, the config) out of the garbage collector's view.

    A full collection scans every tracked object and stops the event loop while it does: ~20 ms for the ~79k
    objects a worker holds after start-up, and under load such a pause was the slowest request (docs/benchmarks.md).
    Frozen, those objects are never scanned again; a full collection visits only what requests created since. Only
    for serving processes: a process that builds many apps (the tests) would keep every frozen one's cycles forever.
    """
    gc.collect()
    gc.freeze()


def _log_to_stderr(level: str, fmt: LogFormat = "text") -> None:
    """Tiergate's own log lines beside uvicorn's, at the serve command's level and in its format (without a handler,
    Python shows only warnings and worse, so a policy reload, an info line, would go unseen)."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(fmt))
    root = logging.getLogger("tiergate")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def serving_app(settings: Settings) -> ASGIApp:
    """The app of a process that will serve it: built, then its start-up heap settled (`settle_heap`)."""
    _log_to_stderr(settings.log_level, settings.log_format)
    app = create_app(settings)
    settle_heap()
    return app


def app_from_env() -> ASGIApp:
    """Factory for uvicorn's worker processes: each builds its own app from TIERGATE_* variables."""
    return serving_app(Settings())
