"""The services one app instance owns, found on `app.state` and injected into routes.

The parts made from the policy file (config, pipeline, limits, recorder, gate) are replaced together when it is
reloaded (gateway/app.py: rewire); a request reads them once, at its start, and finishes with what it read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from gateway.activity import Activity
from gateway.alerts import Alerter
from gateway.auth import Gate
from gateway.body_memo import BodyMemo
from gateway.classify import ClassifierService
from gateway.errors import Unavailable
from gateway.ledger import Ledger, LedgerUnavailable
from gateway.limits import KeyLimits
from gateway.metrics import Metrics
from gateway.pipeline import ChatPipeline
from gateway.recorder import Recorder, Sink
from gateway.transport import Transport
from router.policy import TiergateConfig


@dataclass
class AppServices:
    config: TiergateConfig
    classifier: ClassifierService
    provider: Transport
    ledger: Ledger
    pipeline: ChatPipeline
    metrics: Metrics
    recorder: Recorder
    limits: KeyLimits
    gate: Gate
    activity: Activity = field(default_factory=Activity)
    alerter: Alerter | None = None
    extra_sinks: tuple[Sink, ...] = ()  # besides ledger, metrics and limits: e.g. the per-request log line
    bodies: BodyMemo = field(default_factory=BodyMemo)  # parsed request bodies, for repeated ones


async def _services(request: Request) -> AppServices:  # async: a sync dependency would run in a thread
    s: AppServices = request.app.state.services
    return s


Services = Annotated[AppServices, Depends(_services)]


T = TypeVar("T")


async def ledger_call(fn: Callable[..., T], *args: object) -> T:
    """A call on the ledger database, off the event loop; a database that is down is the client's 503."""
    try:
        return await run_in_threadpool(fn, *args)
    except LedgerUnavailable as e:
        raise Unavailable(f"The ledger database is unavailable: {e}", None, "ledger_unavailable") from None
