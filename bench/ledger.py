"""Ledger write throughput on SQLite and PostgreSQL, and request latency with and without the ledger, in one run.

    .venv/bin/python -m bench.ledger [--records N] [--requests N]
    .venv/bin/python -m bench.ledger --ids

Part 1 records N ledger records through the real writer (bounded queue, batches of 256, one thread) and times
until all are committed: records/s per backend, and the cost of `record()` on the request path. PostgreSQL is
the machine's server (127.0.0.1:5432, a scratch database); SQLite a file in /tmp. The records carry the gateway's
own request ids (gateway/request_ids.py: in arrival order); two more rows time random ids, as the gateway made them
until session 27 (this benchmark used ids in order all along, so it never saw what random ones cost the index).
With `--ids`, only the SQLite insert's own cost per record, by ledger size, with each kind of id.

Part 2 runs the gateway (one uvicorn worker, a subprocess) three times against the fake upstream (a subprocess),
explicit model, with the ledger discarding records, on SQLite and on PostgreSQL, and drives it with httpx from
this process: p50/p99 at concurrency 1 and throughput at concurrency 16. The classifier is a hashing stub here:
an explicit model never consults it, and its load time is not what is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from bench.fixtures import write_one_model_config
from gateway.ledger import LedgerRecord, open_ledger
from gateway.ledger.backends import SqliteBackend
from gateway.request_ids import RequestIds
from tests.fakes.postgres import scratch_database
from tests.fakes.server import wait_http
from tests.fakes.upstream import free_port


def random_id(rng: random.Random) -> str:
    """A request id as the gateway made them until session 27: 128 random bits."""
    return f"tg-{rng.getrandbits(128):032x}"


def write_throughput(url: str, n: int, ordered: bool = True) -> tuple[float, float]:
    """(records/s until committed, µs per record() call). The records are queued in one burst, faster than any
    request path could, so the serving thread's giving way to a writer that falls behind (GIVE_WAY_AT) is off here:
    with it, this would time the sleeps, not the writer. Their request ids are the gateway's own
    (gateway/request_ids.py), or with `ordered` false random ones, as they were before: the ledger's unique index on
    them is where the two differ."""
    ledger = open_ledger(url, Path(tempfile.mkdtemp(prefix="tiergate-spool-")), give_way_at=n + 1)
    now = time.time()
    ids, rng = RequestIds(), random.Random(7)
    recs = [
        LedgerRecord(
            ts=now,
            request_id=ids.new() if ordered else random_id(rng),
            policy="default",
            requested_model="auto",
            routed_model="local",
            tier=0,
            prompt_tokens=42,
            completion_tokens=17,
            cost_usd=0.0,
            baseline_model="big",
            baseline_cost_usd=0.00042,
            latency_ms=12.3,
            key_id="key-0123456789abcdef",
        )
        for i in range(n)
    ]
    t0 = time.perf_counter()
    for r in recs:
        ledger.record(r)
    t_enq = time.perf_counter()
    ledger.flush()
    t_done = time.perf_counter()
    assert ledger.status()["state"] == "up"
    ledger.close()
    return n / (t_done - t0), (t_enq - t0) / n * 1e6


def serve(config: Path, ledger: str, port: int) -> None:
    """The gateway for part 2, built like `tiergate serve` but with a stub classifier and a chosen ledger."""
    import uvicorn

    from classifiers.model import LinearComplexityModel
    from gateway.app import create_app, wire_services
    from gateway.classify import ClassifierService
    from gateway.ledger import Ledger
    from gateway.ledger.backends import SqliteBackend
    from gateway.policy_file import load
    from gateway.response_cache import ChatCache
    from gateway.transport import Transport
    from tests.fakes.encoder import HashEncoder

    class DiscardingLedger(Ledger):
        def record(self, rec: LedgerRecord) -> None:
            pass

    cfg = load(config)
    enc = HashEncoder()
    classifier = ClassifierService(enc, LinearComplexityModel(np.zeros(enc.dim + 4, np.float32), 0.0, enc.name, {}))
    spool = Path(tempfile.mkdtemp(prefix="tiergate-spool-"))
    if ledger == "none":
        unused = spool / "unused.sqlite3"
        led: Ledger = DiscardingLedger(SqliteBackend(unused), SqliteBackend(unused), spool)
    else:
        led = open_ledger(ledger, spool)
    svc = wire_services(cfg, classifier, Transport(os.environ, 30.0), led, ChatCache(None, cfg))
    uvicorn.run(create_app(services=svc), host="127.0.0.1", port=port, log_level="warning")


async def _drive(url: str, n: int, concurrency: int) -> tuple[list[float], float]:
    lat: list[float] = []
    sem = asyncio.Semaphore(concurrency)
    body = {"model": "fast", "messages": [{"role": "user", "content": "hello"}]}
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=concurrency)) as client:

        async def one() -> None:
            async with sem:
                t = time.perf_counter()
                r = await client.post(f"{url}/v1/chat/completions", json=body)
                lat.append(time.perf_counter() - t)
                assert r.status_code == 200, r.text

        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        return lat, n / (time.perf_counter() - t0)


def insert_cost(history: int, ordered: bool, batches: int = 80) -> tuple[float, float, float]:
    """(wall, user, system) µs per record of SQLite inserts of batches of 250 cache-hit records, on this thread, into
    a ledger already holding `history` records: the writer's own cost, without its queue or the request path."""
    backend = SqliteBackend(Path(tempfile.mkdtemp(prefix="tiergate-ids-")) / "ledger.sqlite3")
    backend.migrate()
    ids, rng = RequestIds(), random.Random(7)

    hit = {"policy": "default", "requested_model": "fast", "routed_model": "fast", "status": 200, "cache": "hit"}

    def batch() -> list[LedgerRecord]:
        rid = ids.new if ordered else lambda: random_id(rng)
        return [
            LedgerRecord(ts=time.time(), request_id=rid(), latency_ms=0.2, prompt_tokens=20, completion_tokens=9, **hit)
            for _ in range(250)
        ]

    for _ in range(history // 250):
        backend.insert(batch())
    wall = user = system = 0.0
    for _ in range(batches):
        recs = batch()
        r0, t0 = resource.getrusage(resource.RUSAGE_THREAD), time.perf_counter()
        backend.insert(recs)
        t1, r1 = time.perf_counter(), resource.getrusage(resource.RUSAGE_THREAD)
        wall, user, system = wall + t1 - t0, user + r1.ru_utime - r0.ru_utime, system + r1.ru_stime - r0.ru_stime
    backend.close()
    n = batches * 250 / 1e6
    return wall / n, user / n, system / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=50_000)
    ap.add_argument("--requests", type=int, default=1500)
    ap.add_argument(
        "--ids", action="store_true", help="only the SQLite insert's cost per record, random vs ordered ids"
    )
    ap.add_argument("--serve", nargs=3, metavar=("CONFIG", "LEDGER", "PORT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(Path(args.serve[0]), args.serve[1], int(args.serve[2]))
        return
    if args.ids:
        print("| records already in the ledger | request ids | wall µs/record | user | system |\n|---|---|---|---|---|")
        for history in (0, 40_000, 200_000):
            for ordered in (False, True):
                w, u, k = insert_cost(history, ordered)
                kind = "in arrival order (as served)" if ordered else "random (before session 27)"
                print(f"| {history:,} | {kind} | {w:.1f} | {u:.1f} | {k:.1f} |")
        return
    work = Path(tempfile.mkdtemp(prefix="tiergate-bench-"))
    print(f"Machine: {os.cpu_count()} cores. {args.records} records per backend; {args.requests} requests a row.\n")
    print("| backend | records/s committed | record() µs/call |\n|---|---|---|")
    with scratch_database() as pg:
        for name, url in (("SQLite (WAL, synchronous=NORMAL)", str(work / "w.sqlite3")), ("PostgreSQL 15", pg)):
            rps, us = write_throughput(url, args.records)
            print(f"| {name} | {rps:,.0f} | {us:.1f} |")
        # Each into a file (a database) of its own: the random ids' index must not start with the ordered ones'.
        with scratch_database() as pg_random:
            for name, url in (
                ("SQLite, random request ids", str(work / "r.sqlite3")),
                ("PostgreSQL, random ids", pg_random),
            ):
                rps, us = write_throughput(url, args.records, ordered=False)
                print(f"| {name} (before session 27) | {rps:,.0f} | {us:.1f} |")

        up_port = free_port()
        write_one_model_config(work / "cfg.yaml", up_port)
        up = subprocess.Popen([sys.executable, "-m", "tests.fakes.upstream", str(up_port)], stdout=subprocess.DEVNULL)
        print("\n| gateway ledger | c=1 p50 ms | c=1 p99 ms | c=16 req/s | c=16 p50 ms | c=16 p99 ms |")
        print("|---|---|---|---|---|---|")
        try:
            for name, ledger in (("none (discarded)", "none"), ("SQLite", str(work / "g.sqlite3")), ("PostgreSQL", pg)):
                port = free_port()
                gw = subprocess.Popen(
                    [sys.executable, "-m", "bench.ledger", "--serve", str(work / "cfg.yaml"), ledger, str(port)],
                    stderr=subprocess.DEVNULL,
                )
                try:
                    url = f"http://127.0.0.1:{port}"
                    wait_http(f"{url}/healthz", 120, gw)
                    asyncio.run(_drive(url, 200, 4))  # warm-up
                    lat1, _ = asyncio.run(_drive(url, args.requests, 1))
                    lat16, rps16 = asyncio.run(_drive(url, args.requests, 16))
                    a, b = np.asarray(lat1) * 1000, np.asarray(lat16) * 1000
                    print(
                        f"| {name} | {np.percentile(a, 50):.2f} | {np.percentile(a, 99):.2f} | {rps16:.0f} | "
                        f"{np.percentile(b, 50):.2f} | {np.percentile(b, 99):.2f} |"
                    )
                finally:
                    gw.terminate()
                    gw.wait(timeout=30)
        finally:
            up.terminate()
            up.wait(timeout=30)


if __name__ == "__main__":
    main()
