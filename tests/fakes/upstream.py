"""A fake OpenAI-compatible hosted upstream speaking real HTTP on loopback, for end-to-end tests and benchmarks.

Its answer is deterministic: "echo: <last user text>", with usage counted as whitespace-separated words (prompt: all
message texts; completion: the answer). Behaviour per model is scripted over HTTP or in-process: `{"status": 500}`
fails every call, `{"fail_times": 2, "status": 429}` fails the first two, `{"retry_after": "5"}` sends that header
with the failures, `{"delay_s": 0.5}` adds latency, `{"usage": false}` leaves token usage out (as some
OpenAI-compatible servers do), `{"cut_stream": true}` ends a stream's body after its first word, `{"cached_tokens":
3}` reports that many prompt tokens as read from a prompt cache, `{"reply": "8"}` answers that text instead of the
echo, `{"no_choices": true}` answers whole requests with `choices: []`; in-process, `hold=<a threading.Event>` holds
a whole answer (or its scripted failure, or embeddings) back, and pauses a stream after its first word, until the
event is set. Every request it receives is kept in `received`, so tests can see what really crossed the wire;
started as a program (`python -m tests.fakes.upstream`, what the benchmarks run) it keeps nothing, because a list
that grows by every request makes the process's garbage collection pause longer and longer (0.03 s after ~25k
requests, 0.4 s after ~330k, measured), and those pauses would show up as the gateways' tail latency.
Asked for `logprobs`, it gives every answer token the same log-probability: ln(c) for a `[conf=c]` mark in the
last user message, else ln(0.9). Given `tools` and a `[tool]` mark, it answers with a call of the first tool,
arguments `{"q": <last user text>}`, instead of text; streamed, as OpenAI streams a call (the name, then the
arguments in pieces, then `finish_reason: tool_calls`).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

CONF_MARK = re.compile(r"\[conf=([0-9.]+)\]")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


@dataclass
class Script:
    status: int = 200
    fail_times: int | None = None  # None: fail every call when status != 200
    delay_s: float = 0.0
    message: str | None = None  # the error message of a scripted failure
    code: str | None = None
    usage: bool = True  # False: an OpenAI-compatible server that reports no token usage, streamed or not
    cut_stream: bool = False  # True: a stream's body ends cleanly after its first word, with no finish and no [DONE]
    retry_after: str | None = None  # sent as the Retry-After header of a scripted failure
    cached_tokens: int = 0  # reported as OpenAI's prompt_tokens_details.cached_tokens (at most the prompt's tokens)
    # In-process only: a whole answer waits, and a stream stops after its first word, until a test sets the event.
    hold: threading.Event | None = None
    reply: str | None = None  # a fixed answer instead of the echo (a judge's grade, say)
    no_choices: bool = False  # a whole answer with `choices: []`, as a broken server sends
    calls: int = 0


@dataclass
class FakeUpstream:
    scripts: dict[str, Script] = field(default_factory=dict)
    received: list[dict[str, Any]] = field(default_factory=list)
    keep_received: bool = True
    port: int = 0
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, model: str, **kw: Any) -> None:
        self.scripts[model] = Script(**kw)

    def reset(self) -> None:
        self.scripts.clear()
        self.received.clear()

    def _keep(self, body: dict[str, Any]) -> None:
        if self.keep_received:
            self.received.append(body)

    def calls_for(self, model: str) -> int:
        return sum(1 for r in self.received if r.get("model") == model)

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        self._keep(body)
        model = str(body.get("model", ""))
        sc = self.scripts.get(model, Script())
        sc.calls += 1
        if sc.delay_s:
            await asyncio.sleep(sc.delay_s)
        failing = sc.status != 200 and (sc.fail_times is None or sc.calls <= sc.fail_times)
        if failing:
            if sc.hold is not None and not body.get("stream"):
                await asyncio.to_thread(sc.hold.wait, 60)  # a whole answer's failure is held back as its answer is
            msg = sc.message or f"scripted failure {sc.status}"
            err = {"error": {"message": msg, "type": "invalid_request_error", "code": sc.code}}
            headers = {"retry-after": sc.retry_after} if sc.retry_after is not None else None
            return JSONResponse(err, status_code=sc.status, headers=headers)
        prompt_words = sum(len(_text(m.get("content")).split()) for m in body.get("messages", []))
        last_user = next((_text(m.get("content")) for m in reversed(body["messages"]) if m.get("role") == "user"), "")
        answer = sc.reply if sc.reply is not None else f"echo: {last_user}"
        n = int(body.get("n") or 1)  # n choices, each the same echo; usage counts every choice, as OpenAI's does
        usage = {
            "prompt_tokens": prompt_words,
            "completion_tokens": n * len(answer.split()),
            "total_tokens": prompt_words + n * len(answer.split()),
        }
        if sc.cached_tokens:
            usage["prompt_tokens_details"] = {"cached_tokens": min(sc.cached_tokens, prompt_words)}
        cid = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        created = int(time.time())
        mark = CONF_MARK.search(last_user)
        lp = math.log(float(mark.group(1))) if mark else math.log(0.9)

        def token_logprobs(text: str) -> dict[str, Any]:
            return {"content": [{"token": w, "logprob": lp, "bytes": None, "top_logprobs": []} for w in text.split()]}

        if not body.get("stream"):
            if sc.hold is not None:
                await asyncio.to_thread(sc.hold.wait, 60)
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": answer},
                "finish_reason": "stop",
            }
            if body.get("tools") and "[tool]" in last_user:
                fn = {"name": body["tools"][0]["function"]["name"], "arguments": json.dumps({"q": last_user})}
                call = {"id": f"call_{uuid.uuid4().hex[:8]}", "type": "function", "function": fn}
                choice.update(message={"role": "assistant", "content": None, "tool_calls": [call]})
                choice["finish_reason"] = "tool_calls"
            if body.get("logprobs"):
                choice["logprobs"] = token_logprobs(answer)
            return JSONResponse(
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [] if sc.no_choices else [{**choice, "index": i} for i in range(n)],
                    **({"usage": usage} if sc.usage else {}),
                }
            )
        include_usage = sc.usage and bool((body.get("stream_options") or {}).get("include_usage"))

        async def events() -> AsyncIterator[bytes]:
            base = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model}
            if body.get("tools") and "[tool]" in last_user:
                # As OpenAI streams a call: the id and name first, then the arguments in pieces, then the finish.
                fn_name, args = body["tools"][0]["function"]["name"], json.dumps({"q": last_user})
                first = {"index": 0, "id": f"call_{uuid.uuid4().hex[:8]}", "type": "function"}
                deltas: list[dict[str, Any]] = [
                    {"role": "assistant", "content": None, "tool_calls": [{**first, "function": {"name": fn_name}}]}
                ]
                deltas += [
                    {"tool_calls": [{"index": 0, "function": {"arguments": args[i : i + 7]}}]}
                    for i in range(0, len(args), 7)
                ]
                for delta in deltas:
                    chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                    yield f"data: {json.dumps(chunk)}\n\n".encode()
                stop = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}
                yield f"data: {json.dumps(stop)}\n\n".encode()
                if include_usage:
                    yield f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n".encode()
                yield b"data: [DONE]\n\n"
                return
            words = answer.split(" ")
            for i, w in enumerate(words):
                for c in range(n):  # the choices interleave, one chunk per choice per word, as OpenAI's may
                    delta: dict[str, Any] = {"content": w if i == 0 else " " + w}
                    if i == 0:
                        delta["role"] = "assistant"
                    streamed: dict[str, Any] = {"index": c, "delta": delta, "finish_reason": None}
                    if body.get("logprobs"):
                        streamed["logprobs"] = token_logprobs(w)
                    chunk = {**base, "choices": [streamed]}
                    yield f"data: {json.dumps(chunk)}\n\n".encode()
                if sc.cut_stream:
                    return
                if i == 0 and sc.hold is not None:
                    await asyncio.to_thread(sc.hold.wait, 60)
            for c in range(n):
                stop = {**base, "choices": [{"index": c, "delta": {}, "finish_reason": "stop"}]}
                yield f"data: {json.dumps(stop)}\n\n".encode()
            if include_usage:
                yield f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    async def _embeddings(self, request: Request) -> Response:
        body = await request.json()
        self._keep(body)
        if (hold := self.scripts.get(str(body.get("model", "")), Script()).hold) is not None:
            await asyncio.to_thread(hold.wait, 60)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(str(t))), 1.0, 0.0]}
            for i, t in enumerate(inputs)
        ]
        tokens = sum(len(str(t).split()) for t in inputs)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return JSONResponse({"object": "list", "data": data, "model": body.get("model"), "usage": usage})

    async def _control(self, request: Request) -> Response:
        body = await request.json()
        for model, kw in body.items():
            self.script(model, **kw)
        return JSONResponse({"ok": True})

    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": []})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/_control", self._control, methods=["POST"]),
            ]
        )

    def start(self) -> FakeUpstream:
        self.port = self.port or free_port()
        cfg = uvicorn.Config(self.app(), host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(cfg)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake upstream did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)


if __name__ == "__main__":  # `python -m tests.fakes.upstream PORT`: for benchmarks and manual tries
    import sys

    up = FakeUpstream(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0, keep_received=False)
    print(up.base_url, flush=True)
    uvicorn.run(up.app(), host="127.0.0.1", port=up.port or free_port(), log_level="warning")
