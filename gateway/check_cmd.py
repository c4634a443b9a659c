"""`tiergate check-models`: one tiny real call to every server of every chat model in a policy file, through the
same upstream path the gateway serves with, so a wrong key, address or model name shows before traffic does.

Each call asks for one token of "Reply with OK.": what it costs is printed (a few millionths of a dollar on a hosted
model), and no ledger records it, since it is no client's request.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from gateway.balancer import Deployments
from gateway.policy_file import PolicyFileError, load
from gateway.provider import UpstreamError, reference_prices
from gateway.report_cmd import format_table
from gateway.transport import Transport, needs_litellm
from gateway.usage import usage_of
from router.policy import ModelSpec
from router.pricing import PriceTable

PROBE = [{"role": "user", "content": "Reply with OK."}]


@dataclass(frozen=True)
class Check:
    server: str  # the balancer's key: the model's name, or name#i for one of its deployments
    model: str
    status: str  # "ok", "no key", or the failure ("HTTP 401: ...")
    latency_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 1)


async def _probe(transport: Transport, prices: PriceTable, server: str, spec: ModelSpec) -> Check:
    t0 = time.perf_counter()
    try:
        body = await transport.complete(spec, PROBE, {"max_tokens": 1, "temperature": 0})
    except UpstreamError as e:
        return Check(server, spec.name, f"HTTP {e.status}: {e.message}"[:160], _ms(t0))
    ms = _ms(t0)
    usage = usage_of(body)
    if usage is None:
        return Check(server, spec.name, "ok", ms)
    return Check(
        server, spec.name, "ok", ms, usage.prompt_tokens, usage.completion_tokens, prices.cost(spec.name, usage)
    )


async def check(path: Path, only: str | None, env: Mapping[str, str], timeout_s: float) -> list[Check]:
    """Every server of every chat model (or of `only`) probed at once; servers whose key variable is unset are
    listed, not called."""
    cfg = load(path)
    transport = Transport(env, timeout_s, preload_litellm=needs_litellm(cfg))
    prices = PriceTable(cfg, reference_prices())
    servers = Deployments(cfg, env)
    jobs, missing = [], []
    for m in cfg.models:
        if only is not None and m.name != only:
            continue
        keyed = dict(zip(Deployments.server_keys(m), m.expanded(), strict=True))
        live = set(servers.keys(m.name))
        for key, spec in keyed.items():
            if key in live:
                jobs.append(_probe(transport, prices, key, spec))
            else:
                missing.append(Check(key, m.name, f"no key (${spec.api_key_env} is unset)"))
    try:
        done = list(await asyncio.gather(*jobs))
    finally:
        await transport.close()
    return sorted(done + missing, key=lambda c: c.server)


def run(path: Path, only: str | None, fmt: str, timeout_s: float) -> int:
    """Prints the checks; exit status 0 when every server with its key set answered, 1 if one failed, 2 if the
    policy file is invalid or names no such model."""
    try:
        cfg_models = [m.name for m in load(path).models]
    except PolicyFileError as e:
        print(e.lines())
        return 2
    if only is not None and only not in cfg_models:
        print(f"no model '{only}' in {path} (models: {', '.join(cfg_models)})")
        return 2
    checks = asyncio.run(check(path, only, os.environ, timeout_s))
    rows = [asdict(c) for c in checks]
    if fmt == "json":
        print(json.dumps(rows, indent=2))
    else:
        print(format_table(rows, list(Check.__dataclass_fields__)))
    failed = [c for c in checks if c.status != "ok" and not c.status.startswith("no key")]
    return 1 if failed else 0
