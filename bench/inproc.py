"""Where a request's own CPU goes: Tiergate's ASGI app called in process (no sockets, no HTTP server), timed per
request, and optionally profiled.

    .venv/bin/python -m bench.inproc [--requests 2000] [--rounds 3] [--profile hit|explicit|auto] [--top 25]

Issue 6 asks to profile and fix. On the wire a request's time mixes the gateway's own Python with uvicorn, the
kernel, the load generator and the upstream; this takes those away. The app is `tiergate serve`'s (the default
encoder and artifact, a SQLite ledger, the in-process cache) with bench/gateways.py's policy, in front of the fake
upstream (tests/fakes/upstream.py) over loopback, so a miss still pays for its real upstream call. Each request is
one ASGI call with a fresh scope and body, back to back on the uvloop loop `tiergate serve` uses:

- hit: an identical deterministic request (temperature 0), stored in the cache by one call before the timing;
- explicit: the explicit model, never cached (no temperature): a miss, upstream call included;
- auto: the same prompt with `model: auto`, classified every time.

Rounds alternate the three (hit, explicit, auto, hit, ...) and each prints its p50 and p90 in microseconds. With
`--profile`, one more pass of that kind runs under cProfile; it prints the functions with the most time of their
own and that time summed by package, as shares of the profiled total (cProfile's overhead inflates small calls, so
read the shares, not the absolute times). Earlier sessions' throw-away versions of this script are what
docs/benchmarks.md quotes as "in process".
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

from bench.fixtures import start_upstream, stop, write_two_model_config
from bench.gateways import PROMPT
from tests.fakes.upstream import free_port

KINDS = ("hit", "explicit", "auto")
ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def body_of(kind: str) -> bytes:
    msgs = [{"role": "user", "content": PROMPT}]
    if kind == "hit":
        return orjson.dumps({"model": "fast", "messages": msgs, "temperature": 0})
    return orjson.dumps({"model": "auto" if kind == "auto" else "fast", "messages": msgs})


async def call(app: ASGIApp, body: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
    """One POST /v1/chat/completions through the ASGI app; its status, headers and body."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    sent = False
    status = 0
    headers: dict[bytes, bytes] = {}
    parts: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:  # the request is over; a gateway watching for a disconnect waits here until cancelled
            await asyncio.Event().wait()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            headers.update(message.get("headers", []))
        elif message["type"] == "http.response.body":
            parts.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, headers, b"".join(parts)


def wrong(kind: str, status: int, headers: dict[bytes, bytes]) -> str | None:
    """Why an answer is not what its kind measures, if it is not: a 'hit' that missed the cache would time a miss."""
    if status != 200:
        return f"HTTP {status}"
    cache = headers.get(b"x-tiergate-cache", b"").decode()
    if (cache == "hit") != (kind == "hit"):
        return f"x-tiergate-cache: {cache}"
    if (b"x-tiergate-score" in headers) != (kind == "auto"):
        return "classified" if kind != "auto" else "not classified"
    return None


async def timed(app: ASGIApp, kind: str, n: int) -> list[float]:
    """Microseconds of each of `n` back-to-back calls of this kind; an answer not of this kind stops the run."""
    body = body_of(kind)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        status, headers, answer = await call(app, body)
        out.append((time.perf_counter() - t) * 1e6)
        if why := wrong(kind, status, headers):
            raise SystemExit(f"a '{kind}' request got {why}: {answer[:300]!r}")
    return out


def profile_report(stats: pstats.Stats, top: int) -> str:
    """The `top` functions by their own time, and own time summed by package, as shares of the total."""
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values()) or 1.0

    def package(filename: str) -> str:
        if filename.startswith("~") or filename.startswith("<"):
            return "builtins (C calls: orjson, hashing, ...)"
        parts = Path(filename).parts
        for anchor in ("site-packages", "lib"):
            if anchor in parts:
                rest = parts[len(parts) - parts[::-1].index(anchor) :]
                if rest and anchor == "site-packages":
                    return rest[0].removesuffix(".py")
                if rest and rest[0].startswith("python3"):
                    return f"stdlib {rest[1].removesuffix('.py')}" if len(rest) > 1 else "stdlib"
        here = Path(__file__).resolve().parents[1]
        try:
            rel = Path(filename).resolve().relative_to(here)
            return "/".join(rel.parts[:-1]) + "/" + rel.stem if len(rel.parts) > 1 else rel.stem
        except ValueError:
            return Path(filename).name

    by_pkg: dict[str, float] = {}
    for (filename, _, _), v in raw.items():
        by_pkg[package(filename)] = by_pkg.get(package(filename), 0.0) + v[2]
    rows = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    lines = ["| own time | calls | function |", "|---|---|---|"]
    for (filename, line, name), v in rows:
        lines.append(f"| {v[2] / total:.1%} | {v[1]} | {package(filename)}:{line} {name} |")
    lines += ["", "| own time | package or module |", "|---|---|"]
    for pkg, t in sorted(by_pkg.items(), key=lambda kv: kv[1], reverse=True)[:top]:
        lines.append(f"| {t / total:.1%} | {pkg} |")
    return "\n".join(lines)


async def bench(app: ASGIApp, requests: int, rounds: int, profile: str | None, top: int) -> str:
    # Warm-up: the hit's entry stored (its store runs after the answer: let it land), connections opened, lazy
    # imports done.
    status, _, answer = await call(app, body_of("hit"))
    if status != 200:
        raise SystemExit(f"HTTP {status}: {answer[:300]!r}")
    await asyncio.sleep(0.2)
    for k in KINDS:
        await timed(app, k, 20)
    per: dict[str, list[tuple[float, float]]] = {k: [] for k in KINDS}
    for _ in range(rounds):
        for k in KINDS:
            xs = sorted(await timed(app, k, requests))
            per[k].append((statistics.median(xs), xs[int(0.9 * (len(xs) - 1))]))
    lines = [
        f"{requests} requests per kind and round, {rounds} rounds, p50 / p90 in us per round:",
        "",
        "| kind | p50 by round | p90 by round | median p50 |",
        "|---|---|---|---|",
    ]
    for k in KINDS:
        p50s = [f"{a:.0f}" for a, _ in per[k]]
        p90s = [f"{b:.0f}" for _, b in per[k]]
        med = statistics.median(a for a, _ in per[k])
        lines.append(f"| {k} | {' / '.join(p50s)} | {' / '.join(p90s)} | {med:.0f} |")
    if profile:
        prof = cProfile.Profile()
        prof.enable()
        await timed(app, profile, requests)
        prof.disable()
        lines += ["", f"cProfile of {requests} '{profile}' requests:", "", profile_report(pstats.Stats(prof), top)]
    return "\n".join(lines)


async def lifespan(phase: str, queue: asyncio.Queue[dict[str, Any]], done: asyncio.Event) -> None:
    """Drive the app's lifespan: `startup` returns once it completed; `shutdown` waits for it."""
    await queue.put({"type": f"lifespan.{phase}"})
    await done.wait()
    done.clear()


async def run(args: argparse.Namespace, config: Path, ledger: Path) -> str:
    from gateway.app import create_app
    from gateway.settings import Settings

    app: ASGIApp = create_app(Settings(config=config, ledger_path=ledger, config_poll_s=0))
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    done = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        if message["type"].endswith(".failed"):
            raise SystemExit(f"lifespan failed: {message.get('message')}")
        done.set()

    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, queue.get, send))
    await lifespan("startup", queue, done)
    try:
        return await bench(app, args.requests, args.rounds, args.profile, args.top)
    finally:
        await lifespan("shutdown", queue, done)
        await task


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000, help="requests per kind and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--profile", choices=KINDS, help="also profile this kind with cProfile")
    ap.add_argument("--top", type=int, default=25, help="rows of each profile table")
    args = ap.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
    os.environ.setdefault("TIERGATE_LOG_LEVEL", "warning")
    work = Path(tempfile.mkdtemp(prefix="tiergate-inproc-"))
    port = free_port()
    up = start_upstream(port)
    try:
        config = write_two_model_config(work / "tiergate.yaml", f"http://127.0.0.1:{port}/v1")
        import uvloop

        text = uvloop.run(run(args, config, work / "ledger.sqlite3"))
    finally:
        stop(up)
    print(text)


if __name__ == "__main__":
    main()
