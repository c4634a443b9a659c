"""Shared fixtures: the fake hosted upstream (real HTTP) and a gateway factory running on a loopback port."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
import yaml

import gateway  # noqa: F401  (sets litellm's offline variables before anything imports litellm)
from classifiers.model import LinearComplexityModel
from gateway.app import create_app, wire_services
from gateway.classify import ClassifierService
from gateway.deps import AppServices
from gateway.ledger import open_ledger
from gateway.response_cache import ChatCache
from gateway.settings import Settings
from gateway.transport import Transport
from router.policy import TiergateConfig
from tests.fakes.encoder import HashEncoder
from tests.fakes.postgres import OwnPostgres, scratch_database
from tests.fakes.redis_server import OwnRedis
from tests.fakes.server import RunningServer, serve_in_thread
from tests.fakes.upstream import FakeUpstream

SCORE_MARK = re.compile(r"\[score=([0-9.]+)\]")


async def marked_score(text: str, turns: int) -> float:
    """Test seam for the classifier: a prompt says its own score as `[score=0.8]` (default 0.1)."""
    m = SCORE_MARK.search(text)
    return float(m.group(1)) if m else 0.1


@pytest.fixture(scope="session")
def upstream() -> Iterator[FakeUpstream]:
    up = FakeUpstream().start()
    yield up
    up.stop()


@pytest.fixture
def fresh_upstream(upstream: FakeUpstream) -> FakeUpstream:
    upstream.reset()
    return upstream


def api_config(base_url: str) -> dict[str, Any]:
    """Models all served by the fake upstream; `flaky` is the cheapest tier-1 model, so it is tried first."""

    def m(name: str, tier: int, price: tuple[float, float] | None, **kw: Any) -> dict[str, Any]:
        d: dict[str, Any] = {"name": name, "litellm_model": f"openai/{name}", "api_base": base_url, "tier": tier, **kw}
        if price is not None:
            d["price"] = {"input_per_mtok": price[0], "output_per_mtok": price[1]}
        return d

    return {
        "models": [
            m("local-small", 0, (0.0, 0.0), local=True, capabilities={"context_window": 2048}),
            m("flaky", 1, (0.1, 0.2), capabilities={"context_window": 16000}),
            m("mid", 1, (0.5, 1.5), capabilities={"context_window": 16000, "tools": True}),
            # No price: litellm's table for gpt-4o is used, as for a real hosted model.
            {
                **m("gpt-4o", 2, None, capabilities={"context_window": 128000, "tools": True}),
                "api_key_env": "FAKE_OPENAI_KEY",
            },
            {**m("keyless", 2, (1.0, 1.0)), "api_key_env": "TIERGATE_TEST_UNSET_KEY"},
        ],
        "policies": {
            "default": {"thresholds": [0.35, 0.7], "baseline_model": "gpt-4o"},
            "strict": {
                "thresholds": [0.35, 0.7],
                "baseline_model": "gpt-4o",
                "on_unavailable": "reject",
                "allowed_models": ["local-small", "keyless"],
            },
        },
    }


GatewayFactory = Callable[..., tuple[RunningServer, AppServices]]


def until(check: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    """Poll for a state a server or another thread brings about: a deadline against hangs, not a timing assertion."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.01)


def model_now(url: str, name: str = "local-small") -> dict[str, Any]:
    """One chat model's entry in the gateway's GET /api/models: its status, calls in flight and waiting."""
    return next(m for m in httpx.get(f"{url}/api/models").json()["data"] if m["name"] == name)


def sdk(url: str, key: str = "unused") -> openai.OpenAI:
    """The official client pointed at a gateway, as an app would point it; no retries, so a test sees every error."""
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


def cache_settled(services: AppServices, timeout_s: float = 10.0) -> None:
    """Wait until the gateway has finished storing the answers it gave (a store runs after its response is sent,
    but is scheduled before: once this returns, every answer given so far is in the cache)."""
    deadline = time.monotonic() + timeout_s
    while services.pipeline.cache.pending:
        assert time.monotonic() < deadline, f"{services.pipeline.cache.pending} cache stores still pending"
        time.sleep(0.005)


@pytest.fixture
def gateway_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GatewayFactory]:
    monkeypatch.setenv("FAKE_OPENAI_KEY", "sk-fake")
    monkeypatch.delenv("TIERGATE_TEST_UNSET_KEY", raising=False)
    started: list[tuple[RunningServer, AppServices]] = []

    def make(
        cfg: dict[str, Any],
        score: Any = marked_score,
        store: Any = None,
        ledger_url: str | None = None,
        watch: Path | None = None,
        **settings_kw: Any,
    ) -> tuple[RunningServer, AppServices]:
        """`watch`: write `cfg` to that YAML file and reload it when it changes, every 50 ms. `settings_kw`: process
        settings the app itself reads (e.g. ledger_retention)."""
        config = TiergateConfig.model_validate(cfg)
        enc = HashEncoder()
        zero = LinearComplexityModel(np.zeros(enc.dim + 4, dtype=np.float32), 0.0, enc.name, {})
        classifier = ClassifierService(enc, zero)
        provider = Transport(os.environ, 10.0)
        n = len(started)
        ledger = open_ledger(ledger_url or tmp_path / f"ledger-{n}.sqlite3", tmp_path / f"spool-{n}", retry_s=0.2)
        services = wire_services(config, classifier, provider, ledger, ChatCache(store, config), score)
        settings = None
        if watch is not None or settings_kw:
            path = watch or tmp_path / f"policy-{n}.yaml"
            path.write_text(yaml.safe_dump(cfg))
            settings = Settings(config=path, config_poll_s=0.05 if watch else 0, **settings_kw)
        server = serve_in_thread(create_app(settings, services))
        started.append((server, services))
        return server, services

    yield make
    for server, services in started:
        server.stop()
        services.ledger.close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh database on the machine's PostgreSQL (127.0.0.1:5432), dropped after the test."""
    with scratch_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same test on both ledger backends."""
    if request.param == "sqlite":
        yield str(tmp_path / "ledger.sqlite3")
    else:
        with scratch_database() as url:
            yield url


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    """A redis-server of the test's own (not started): the one the test stops, never the machine's."""
    redis = OwnRedis(tmp_path)
    yield redis
    redis.stop()


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    """A private PostgreSQL instance, started; the test may stop and restart it."""
    pg = OwnPostgres()
    pg.start()
    yield pg
    pg.destroy()
