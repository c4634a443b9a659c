"""Cache hit path vs a miss, through a running `tiergate serve` with Redis, side by side in one run.

    .venv/bin/python -m bench.cache [--requests N]

The gateway serves an explicit model (no classification, so the cache's own cost shows) backed by the fake
OpenAI-compatible upstream on loopback. Misses are unique deterministic prompts (looked up, sent upstream, then
stored); hits repeat one stored prompt. The client is httpx's async client, the same for both paths: its own
per-request cost is in every number, so compare the two rows rather than read them as the gateway alone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from bench.fixtures import start_tiergate, start_upstream, stop, write_one_model_config
from tests.fakes.upstream import free_port

PROMPT = [{"role": "user", "content": "What is the capital of France?"}]


async def _drive(url: str, bodies: list[dict[str, object]], concurrency: int) -> tuple[list[float], float, set[str]]:
    lat: list[float] = []
    statuses: set[str] = set()
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=concurrency)) as client:

        async def one(body: dict[str, object]) -> None:
            async with sem:
                t = time.perf_counter()
                r = await client.post(f"{url}/v1/chat/completions", json=body)
                lat.append(time.perf_counter() - t)
                statuses.add(r.headers.get("x-tiergate-cache", str(r.status_code)))

        t0 = time.perf_counter()
        await asyncio.gather(*(one(b) for b in bodies))
        return lat, len(bodies) / (time.perf_counter() - t0), statuses


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    args = ap.parse_args()
    up_port, gw_port = free_port(), free_port()
    work = Path(tempfile.mkdtemp(prefix="tiergate-bench-"))
    write_one_model_config(work / "cfg.yaml", up_port)
    env = {"TIERGATE_CACHE_URL": "redis://127.0.0.1:6379/0", "TIERGATE_LEDGER_PATH": str(work / "l.db")}
    up = start_upstream(up_port)
    try:
        gw = start_tiergate(work / "cfg.yaml", gw_port, env)
    except Exception:
        stop(up)
        raise
    try:
        url = f"http://127.0.0.1:{gw_port}"
        run = time.time_ns()
        hit_body = {"model": "fast", "messages": PROMPT, "temperature": 0, "user": str(run)}
        httpx.post(
            f"{url}/v1/chat/completions", json={**hit_body, "messages": [{"role": "user", "content": f"warm {run}"}]}
        )
        httpx.post(f"{url}/v1/chat/completions", json=hit_body)
        time.sleep(0.3)
        cores = os.cpu_count()
        print(f"Machine: {cores} cores; one gateway worker; Redis at 127.0.0.1:6379; {args.requests} requests a row\n")
        print("| path | concurrency | req/s | p50 ms | p99 ms | x-tiergate-cache |\n|---|---|---|---|---|---|")
        for conc in (1, 16):
            misses = [
                {
                    "model": "fast",
                    "temperature": 0,
                    "messages": [{"role": "user", "content": f"unique {run} {conc} {i}"}],
                }
                for i in range(args.requests)
            ]
            for name, bodies in (("miss (upstream + store)", misses), ("hit", [hit_body] * args.requests)):
                lat, rps, st = asyncio.run(_drive(url, bodies, conc))
                ms = np.asarray(lat) * 1000
                print(
                    f"| {name} | {conc} | {rps:.0f} | {np.percentile(ms, 50):.2f} | {np.percentile(ms, 99):.2f} | "
                    f"{','.join(sorted(st))} |"
                )
    finally:
        stop(gw, up)


if __name__ == "__main__":
    main()
