"""The services one app instance owns, found on `app.state` and injected into routes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from gateway.activity import Activity
from gateway.classify import ClassifierService
from gateway.ledger import Ledger
from gateway.metrics import Metrics
from gateway.pipeline import ChatPipeline
from gateway.recorder import Recorder
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
    activity: Activity = field(default_factory=Activity)


async def _services(request: Request) -> AppServices:  # async: a sync dependency would run in a thread
    s: AppServices = request.app.state.services
    return s


Services = Annotated[AppServices, Depends(_services)]
