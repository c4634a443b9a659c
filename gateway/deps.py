"""The services one app instance owns, found on `app.state` and injected into routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from gateway.classify import ClassifierService
from gateway.ledger import Ledger
from gateway.metrics import Metrics
from gateway.pipeline import ChatPipeline
from gateway.provider import LitellmProvider
from gateway.recorder import Recorder
from router.policy import TiergateConfig


@dataclass
class AppServices:
    config: TiergateConfig
    classifier: ClassifierService
    provider: LitellmProvider
    ledger: Ledger
    pipeline: ChatPipeline
    metrics: Metrics
    recorder: Recorder


def _services(request: Request) -> AppServices:
    s: AppServices = request.app.state.services
    return s


Services = Annotated[AppServices, Depends(_services)]
