"""Nothing lost when everything goes wrong at once. `tiergate serve --workers 2` takes chat, streamed chat, Responses
(whole and streamed), embeddings and malformed requests from 16 clients, some of which leave early (before the
answer, mid-stream, or while still sending their body). Meanwhile the upstream fails, throttles, slows down and cuts
streams at random, the test's own Redis and its own PostgreSQL each go down for a while, and the policy file is edited
(and now and then saved broken) every fraction of a second.

Afterwards: every request that got an answer has exactly one ledger record, with the status its client saw (a stream
that broke after its 200 is a 502 on record); no request has two; nothing was answered or recorded as a 500; the log
holds no unhandled error; and the gateway is ready again. The mix is seeded, so a failure names what to replay
(the timing still varies). Requests are matched to records by a unique `x-tiergate-tags` each."""

from __future__ import annotations

import asyncio
import collections
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import yaml

from tests.conftest import until
from tests.fakes.postgres import OwnPostgres
from tests.fakes.redis_server import OwnRedis
from tests.fakes.server import wait_http
from tests.fakes.upstream import FakeUpstream, free_port

SEED = 20261127
LOAD_S = 14.0
CLIENTS = 16
MODELS = ["local-small", "mid", "big"]
PROMPTS = ["What is 2+2?", "Write a haiku about rain.", "Prove that sqrt(2) is irrational.", "Explain quicksort."]
KINDS = {
    "chat": 30,
    "chat-stream": 20,
    "bad": 6,
    "resp": 8,
    "resp-stream": 8,
    "comp": 7,
    "comp-stream": 7,
    "emb": 10,
    "leave-mid-body": 4,
}


def _config(upstream: FakeUpstream) -> dict[str, Any]:
    def m(name: str, tier: int, price: float, **kw: Any) -> dict[str, Any]:
        cost = {"input_per_mtok": price, "output_per_mtok": 3 * price}
        return {"name": name, "litellm_model": f"openai/{name}", "api_base": upstream.base_url, "tier": tier,
                "price": cost, "capabilities": {"context_window": 16000}, **kw}  # fmt: skip

    return {
        "models": [m("local-small", 0, 0.0, local=True), m("mid", 1, 0.5), m("big", 2, 5.0)],
        "policies": {"default": {"thresholds": [0.35, 0.7], "baseline_model": "big", "allow_direct": True}},
    }


class Load:
    """The clients: what each request was and what its client saw (None: it left before an answer)."""

    def __init__(self, url: str, rng: random.Random) -> None:
        self.url, self.rng = url, rng
        self.seen: dict[str, tuple[str, int | None]] = {}

    def _body(self, kind: str) -> tuple[str, dict[str, Any]]:
        rng = self.rng
        prompt, model = rng.choice(PROMPTS), rng.choice(["auto", "auto", *MODELS])
        temperature = rng.choice([0, 0.7])  # 0: cacheable, so some are hits
        if kind == "emb":
            return "/v1/embeddings", {"model": "all-minilm-l6-v2", "input": [prompt, prompt + "?"]}
        if kind.startswith("comp"):
            body = {"model": model, "prompt": prompt, "temperature": temperature, "max_tokens": 32}
            return "/v1/completions", {**body, "stream": kind == "comp-stream"}
        if kind.startswith("resp"):
            body = {"model": model, "input": prompt, "temperature": temperature, "max_output_tokens": 32}
            return "/v1/responses", {**body, "stream": kind == "resp-stream"}
        msgs = [{"role": "user", "content": prompt}]
        if kind == "bad":
            bad = [{"model": model}, {"model": model, "messages": msgs, "temperature": "hot"}]
            return "/v1/chat/completions", rng.choice([*bad, {"model": "nope", "messages": msgs}])
        body = {"model": model, "messages": msgs, "temperature": temperature, "max_tokens": 32}
        if kind == "chat-stream":
            body |= {"stream": True, "stream_options": {"include_usage": rng.random() < 0.5}}
        return "/v1/chat/completions", body

    async def _leave_mid_body(self, tag: str) -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", int(self.url.rsplit(":", 1)[1]))
        path = self.rng.choice(["/v1/chat/completions", "/v1/embeddings", "/v1/responses", "/v1/completions"])
        head = f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 200\r\n"
        writer.write(f"{head}x-tiergate-tags: {tag}\r\n\r\n".encode() + b'{"model": "auto", "mess')
        await writer.drain()
        await asyncio.sleep(self.rng.uniform(0, 0.02))
        writer.close()
        self.seen[tag] = ("leave-mid-body", None)

    async def one(self, client: httpx.AsyncClient, n: int) -> None:
        tag = f"s-{n}"
        kind = self.rng.choices(list(KINDS), list(KINDS.values()))[0]
        if kind == "leave-mid-body":
            return await self._leave_mid_body(tag)
        path, body = self._body(kind)
        leave, leave_after_s = self.rng.random() < 0.15, self.rng.uniform(0.0005, 0.03)
        headers = {"x-tiergate-tags": tag}
        self.seen[tag] = (kind, None)
        try:
            if body.get("stream"):
                async with client.stream("POST", self.url + path, json=body, headers=headers) as r:
                    async for _ in r.aiter_raw():
                        if leave:  # after its first piece
                            return
                    self.seen[tag] = (kind, r.status_code)
            elif leave:
                r = await asyncio.wait_for(client.post(self.url + path, json=body, headers=headers), leave_after_s)
                self.seen[tag] = (kind, r.status_code)
            else:
                r = await client.post(self.url + path, json=body, headers=headers)
                self.seen[tag] = (kind, r.status_code)
        except (TimeoutError, httpx.TransportError):
            pass  # it left (or was cut off): no answer it saw to check

    async def run(self, seconds: float) -> None:
        counter = iter(range(10**9))
        end = time.monotonic() + seconds
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=2 * CLIENTS)) as client:

            async def client_loop() -> None:
                while time.monotonic() < end:
                    await self.one(client, next(counter))

            await asyncio.gather(*(client_loop() for _ in range(CLIENTS)))


async def _upstream_chaos(upstream: FakeUpstream, rng: random.Random, seconds: float) -> None:
    """Each turn, one model is healthy again, fails a few calls (500 or 429), slows down, or cuts its streams."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        model, roll = rng.choice(MODELS), rng.random()
        upstream.script(model)  # back to healthy, then maybe one fault
        if roll < 0.15:
            upstream.script(model, status=500, fail_times=rng.randint(1, 4))
        elif roll < 0.3:
            upstream.script(model, status=429, fail_times=rng.randint(1, 4), retry_after="1")
        elif roll < 0.45:
            upstream.script(model, delay_s=rng.choice([0.05, 0.3]))
        elif roll < 0.6:
            upstream.script(model, cut_stream=True)
        await asyncio.sleep(rng.uniform(0.1, 0.5))
    for model in MODELS:
        upstream.script(model)


async def _policy_edits(path: Path, upstream: FakeUpstream, rng: random.Random, seconds: float) -> None:
    """An operator at work: the policy file is saved every 0.2-0.8 s (the workers look every 0.2 s) with other
    thresholds and prices, now and then as a broken save, each by a rename as editors save; the models stay."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        cfg = _config(upstream)
        cfg["policies"]["default"]["thresholds"] = sorted(round(rng.random(), 2) for _ in range(2))
        for m in cfg["models"][1:]:
            m["price"] = {
                "input_per_mtok": round(rng.uniform(0.1, 9), 2),
                "output_per_mtok": round(rng.uniform(1, 30), 2),
            }
        text = "models: [broken\n" if rng.random() < 0.15 else yaml.safe_dump(cfg)
        (path.parent / "next.yaml").write_text(text)
        os.replace(path.parent / "next.yaml", path)
        await asyncio.sleep(rng.uniform(0.2, 0.8))
    path.write_text(yaml.safe_dump(_config(upstream)))


async def _outages(redis: OwnRedis, pg: OwnPostgres) -> None:
    await asyncio.sleep(2)
    await asyncio.to_thread(redis.stop)
    await asyncio.sleep(3)
    await asyncio.to_thread(redis.start)
    await asyncio.to_thread(pg.stop, "immediate")  # a crash: connections die mid-transaction
    await asyncio.sleep(3)
    await asyncio.to_thread(pg.start)


def _all_ready(url: str) -> bool:
    # A new connection each time, so both workers answer in turn.
    return all(
        httpx.get(f"{url}/readyz", headers={"connection": "close"}).json()["status"] == "ready" for _ in range(8)
    )


def test_mixed_load_through_upstream_faults_and_outages_loses_and_doubles_no_record(
    tmp_path: Path, own_postgres: OwnPostgres, own_redis: OwnRedis
) -> None:
    rng = random.Random(SEED)
    upstream = FakeUpstream().start()
    own_redis.start()
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(_config(upstream)))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "TIERGATE_CACHE_URL": own_redis.url,
        "TIERGATE_LEDGER_URL": own_postgres.url,
        "TIERGATE_LEDGER_SPOOL_DIR": str(tmp_path / "spool"),
        "TIERGATE_CONFIG_POLL_S": "0.2",
    }
    log = tmp_path / "serve.log"
    args = ["serve", "--config", str(tmp_path / "cfg.yaml"), "--port", str(port), "--workers", "2"]
    with log.open("wb") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", *args], stdout=f, stderr=subprocess.STDOUT, env=env
        )
    load = Load(url, rng)
    try:
        wait_http(f"{url}/readyz", 180, proc, log)

        async def everything() -> None:
            await asyncio.gather(
                load.run(LOAD_S),
                _upstream_chaos(upstream, rng, LOAD_S),
                _outages(own_redis, own_postgres),
                _policy_edits(tmp_path / "cfg.yaml", upstream, rng, LOAD_S),
            )

        asyncio.run(everything())
        until(lambda: _all_ready(url), "both workers' cache and ledger back", 60)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        upstream.stop()
    text = log.read_text()
    with psycopg.connect(own_postgres.url) as c:
        rows = c.execute("SELECT tags, status, stream FROM requests").fetchall()
    records = collections.defaultdict(list)
    for tags, status, stream in rows:
        records[(tags or "").strip(",")].append((status, stream))

    answered = {tag: seen for tag, seen in load.seen.items() if seen[1] is not None}
    by_kind = collections.Counter(kind for kind, status in answered.values() if status == 200)
    assert all(by_kind[k] > 20 for k in KINDS if k not in ("bad", "leave-mid-body")), by_kind  # not vacuous
    assert "spooling records locally" in text and "redis get failed" in text  # both outages were felt
    assert "reloaded" in text and "changed but is invalid" in text  # edits, broken saves among them, were read
    assert [t for t in answered if t not in records] == []  # every answered request is on record ...
    assert {t: r for t, r in records.items() if len(r) > 1} == {}  # ... once (and so is every other)
    wrong = {t: (seen, records[t][0][0]) for t, seen in answered.items() if records[t][0][0] != seen[1]}
    broken_streams = {t for t, ((kind, _), status) in wrong.items() if kind.endswith("stream") and status == 502}
    assert {t: w for t, w in wrong.items() if t not in broken_streams} == {}
    assert 500 not in {status for _, status in answered.values()} | {r[0][0] for r in records.values()}
    assert "Traceback" not in text and "unhandled error" not in text, text[-5000:]
    statuses = collections.Counter(status for r in records.values() for status, _ in r)
    print(f"{len(load.seen)} requests, {len(answered)} answered, records by status {dict(statuses)}")
