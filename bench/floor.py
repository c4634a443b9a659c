"""How fast can a cache hit be, next to a miss, on uvicorn at concurrency 1? Floors measured side by side.

    .venv/bin/python -m bench.floor [--seconds 5] [--rounds 5] [--docs docs/benchmarks.md]

Issue 6 asks for a cache hit at least 3x faster at p50 than the fastest miss. Against the fake upstream, which
answers in about the time of one loopback round trip, that ratio is bounded by the server stack before any
gateway code runs. This measures the bound with wrk at c=1, the same body and the same answer bytes everywhere:

- raw: an asyncio protocol on uvloop that answers every request with fixed bytes (no HTTP framework at all);
- bare hit: a do-nothing ASGI app under uvicorn (uvloop + httptools, as `tiergate serve` runs) answering the
  same bytes: the fastest hit any gateway on uvicorn can serve;
- bare miss: the same ASGI app forwarding each body to the upstream over gateway/h1client.py and returning its
  answer: the fastest miss any gateway on uvicorn can serve;
- upstream: the fake upstream alone (tests/fakes/upstream.py);
- Tiergate hit / miss: `tiergate serve`, an identical deterministic request from its cache / an explicit model;
- with `--local`, also Tiergate's miss on the real local model of the default configuration (llama-server with
  SmolLM2-135M, one output token, temperature 0.7 so that it is never cached): the fastest miss a real model gives.

Targets are measured in turns (every round visits each once, in an order that rotates), and the median of the
rounds' p50s is reported, so that a noisy stretch of the shared machine hits every target alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.fixtures import start_tiergate, start_upstream, stop, write_docs_block, write_one_model_config
from bench.gateways import PROMPT, classifier_p50_ms, wrk
from tests.fakes.server import wait_http
from tests.fakes.upstream import free_port
from tests.local_model import ALIAS, start_llama_server

BODY: dict[str, object] = {"model": "fast", "messages": [{"role": "user", "content": PROMPT}]}
HIT_BODY: dict[str, object] = {**BODY, "temperature": 0}

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def serve_raw(port: int, answer: bytes) -> None:
    """Fixed answer bytes for every request head seen: the floor of a Python server on this machine."""
    import uvloop

    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(answer)
    reply = head + answer

    class Proto(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: Any = transport

        def data_received(self, data: bytes) -> None:
            # wrk sends the head and the small body in one segment; one answer per segment is enough here.
            self.transport.write(reply)

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Proto, "127.0.0.1", port)
        await server.serve_forever()

    uvloop.run(main())


def serve_asgi(port: int, answer: bytes, upstream: str | None, classify: bool = False) -> None:
    """A do-nothing ASGI app on uvicorn: answers fixed bytes, or (with `upstream`) forwards the body and relays;
    with `classify`, it first scores the prompt with the gateway's own classifier, inline, as Tiergate does at
    c=1, and throws the score away."""
    import orjson
    import uvicorn

    from classifiers.features import prompt_from_messages
    from classifiers.model import ComplexityClassifier
    from gateway.classify import load_model
    from gateway.encoders import make_encoder
    from gateway.h1client import H1Pool, endpoint
    from gateway.settings import Settings

    headers = [(b"content-type", b"application/json")]
    pool = H1Pool()
    ep = endpoint("POST", f"{upstream}/chat/completions", {"content-type": "application/json"}) if upstream else None
    clf = None
    if classify:
        settings = Settings()
        clf = ComplexityClassifier(make_encoder(settings.encoder), load_model(settings.classifier_artifact))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        out, hdrs = answer, headers
        if ep is not None and scope["method"] == "POST":  # the readiness probe's GET is not forwarded
            if clf is not None:
                t0 = time.perf_counter()
                text, turns = prompt_from_messages(orjson.loads(body)["messages"])
                clf.score_batch([text], [turns])
                ms = (time.perf_counter() - t0) * 1000.0
                hdrs = [*headers, (b"server-timing", f"classify;dur={ms:.3f}".encode())]
            resp = await pool.send(ep, body)
            out = await resp.read()
        await send({"type": "http.response.start", "status": 200, "headers": hdrs})
        await send({"type": "http.response.body", "body": out})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off")


def _serve(mode: str, port: int, answer: Path, upstream: str | None) -> subprocess.Popen[bytes]:
    serve, extra = ("asgi", ["--classify"]) if mode == "asgi-classify" else (mode, [])
    cmd = [sys.executable, "-m", "bench.floor", "--serve", serve, "--port", str(port), "--answer", str(answer), *extra]
    proc = subprocess.Popen(cmd + (["--upstream", upstream] if upstream else []), stdout=subprocess.DEVNULL)
    # raw answers anything with 200, the ASGI apps too: a GET is enough to know they listen.
    wait_http(f"http://127.0.0.1:{port}/", 60, proc)
    return proc


def measure(seconds: int, rounds: int, local: bool) -> tuple[dict[str, list[float]], int]:
    work = Path(tempfile.mkdtemp(prefix="tiergate-floor-"))
    up_port = free_port()
    upstream = f"http://127.0.0.1:{up_port}/v1"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(start_upstream(up_port))
        answer = httpx.post(f"{upstream}/chat/completions", json=BODY).content
        (work / "answer.json").write_bytes(answer)
        urls: dict[str, tuple[str, dict[str, object]]] = {}
        bare = (
            ("raw", "raw", None),
            ("bare hit", "asgi", None),
            ("bare miss", "asgi", upstream),
            ("bare auto", "asgi-classify", upstream),
        )
        for name, mode, up in bare:
            port = free_port()
            procs.append(_serve(mode, port, work / "answer.json", up))
            urls[name] = (f"http://127.0.0.1:{port}/v1/chat/completions", BODY)
        urls["upstream"] = (f"{upstream}/chat/completions", BODY)
        tg_port = free_port()
        cfg = write_one_model_config(work / "tiergate.yaml", up_port)
        if local:
            llama_port = free_port()
            procs.append(start_llama_server(llama_port, work / "llama-server.log"))
            doc = yaml.safe_load(cfg.read_text())
            base = f"http://127.0.0.1:{llama_port}/v1"
            model = {"name": "local", "litellm_model": f"openai/{ALIAS}", "api_base": base, "tier": 0, "local": True}
            # Priced above `fast` so that `auto` keeps routing to the fake upstream (cheapest adequate first) and
            # only the requests naming `local` reach llama-server.
            doc["models"].append({**model, "price": {"input_per_mtok": 100.0, "output_per_mtok": 100.0}})
            cfg.write_text(yaml.safe_dump(doc))
        procs.append(start_tiergate(cfg, tg_port, {"TIERGATE_LEDGER_PATH": str(work / "ledger.sqlite3")}))
        tg = f"http://127.0.0.1:{tg_port}/v1/chat/completions"
        urls["Tiergate hit"] = (tg, HIT_BODY)
        urls["Tiergate miss"] = (tg, BODY)
        urls["Tiergate auto"] = (tg, {**BODY, "model": "auto"})
        if local:
            urls["Tiergate miss, local model"] = (tg, {**BODY, "model": "local", "max_tokens": 1, "temperature": 0.7})
        for url, body in urls.values():  # warm-up: connections, lazy imports, the cache entry
            wrk(url, body, 1, 2, {})
        p50: dict[str, list[float]] = {name: [] for name in urls}
        inside: dict[str, list[float]] = {name: [] for name in urls if "auto" in name}
        alone = [classifier_p50_ms()[1] * 1000.0]
        names = list(urls)
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                url, body = urls[name]
                res = wrk(url, body, 1, seconds, {}, timing=name in inside)
                p50[name].append(res.p50_ms * 1000.0)
                if name in inside:
                    assert res.classify_p50_ms is not None, f"{name}: no Server-Timing on its answers"
                    inside[name].append(res.classify_p50_ms * 1000.0)
        alone.append(classifier_p50_ms()[1] * 1000.0)
        p50.update({f"{k}: classifier inside": v for k, v in inside.items()})
        p50["classifier alone, back to back (before, after)"] = alone
        return p50, len(answer)
    finally:
        stop(*procs)


def report(p50: dict[str, list[float]], answer_bytes: int, seconds: int, rounds: int) -> str:
    med = {k: statistics.median(v) for k, v in p50.items()}
    lines = [
        f"wrk, concurrency 1, {seconds} s per cell, {rounds} rounds in rotating order; the same {answer_bytes}-byte "
        "answer everywhere\n",
        "| target | p50 us (median of rounds) | p50 us per round |",
        "|---|---|---|",
    ]
    lines += [f"| {k} | {med[k]:.0f} | {', '.join(f'{x:.0f}' for x in v)} |" for k, v in p50.items()]
    lines.append(
        f"\nMiss / hit at p50: bare (no gateway code, the best a uvicorn gateway can do against this upstream) "
        f"{med['bare miss'] / med['bare hit']:.2f}x; Tiergate {med['Tiergate miss'] / med['Tiergate hit']:.2f}x. "
        f"uvicorn's floor over a raw protocol: {med['bare hit'] - med['raw']:.0f} us; Tiergate's hit over uvicorn's "
        f"floor: {med['Tiergate hit'] - med['bare hit']:.0f} us; its miss over the bare miss: "
        f"{med['Tiergate miss'] - med['bare miss']:.0f} us."
    )
    if "Tiergate miss, local model" in med:
        lines.append(
            f"Against the real local model: Tiergate's miss {med['Tiergate miss, local model']:.0f} us, "
            f"{med['Tiergate miss, local model'] / med['Tiergate hit']:.0f}x its hit."
        )
    up = med["upstream"]
    alone = med["classifier alone, back to back (before, after)"]
    for who in ("bare", "Tiergate"):
        added, inside = med[f"{who} auto"] - up, med[f"{who} auto: classifier inside"]
        lines.append(
            f"{who} auto: added p50 over the upstream alone {added:.0f} us; its classifier inside it {inside:.0f} us, "
            f"so {added - inside:.0f} us beyond its own classifier ({added - alone:.0f} us beyond the classifier "
            f"alone back to back)."
        )
    return "\n".join(lines)


def write_docs(path: Path, text: str, seconds: int, rounds: int, local: bool) -> None:
    cmd = f".venv/bin/python -m bench.floor --seconds {seconds} --rounds {rounds}{' --local' * local} --docs {path}"
    write_docs_block(path, "bench.floor", cmd, text)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5, help="seconds per wrk cell")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--local", action="store_true", help="also a miss on the local model (llama-server, SmolLM2)")
    ap.add_argument("--docs", type=Path, help="also write the report into this markdown file, between markers")
    ap.add_argument("--serve", choices=("raw", "asgi"), help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--answer", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--upstream", help=argparse.SUPPRESS)
    ap.add_argument("--classify", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve == "raw":
        serve_raw(args.port, args.answer.read_bytes())
        return
    if args.serve == "asgi":
        serve_asgi(args.port, args.answer.read_bytes(), args.upstream, args.classify)
        return
    p50, size = measure(args.seconds, args.rounds, args.local)
    text = report(p50, size, args.seconds, args.rounds)
    print(text)
    print(json.dumps(p50))
    if args.docs:
        write_docs(args.docs, text, args.seconds, args.rounds, args.local)


if __name__ == "__main__":
    main()
