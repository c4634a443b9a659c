"""The lean path: chat calls to OpenAI-compatible upstreams (`openai/...` models) over pooled keep-alive connections.

It sends what litellm would send for such a model (POST <api_base>/chat/completions, the model name without the
`openai/` prefix, the messages and parameters, `extra_body` merged at the top level as the OpenAI SDK does) and
gives failures the same verdicts (gateway/provider.py: `upstream_error`), without litellm's per-call work, which
costs more CPU than the whole rest of a request, or aiohttp's (gateway/h1client.py says why; docs/benchmarks.md).
Other providers still go through litellm.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any

import orjson

from gateway.h1client import Endpoint, H1Pool, endpoint
from gateway.provider import UpstreamError, api_key, upstream_error, whole_answer
from router.policy import ModelSpec

DEFAULT_BASE = "https://api.openai.com/v1"
# How OpenAI, vLLM, llama.cpp and Ollama word "the prompt does not fit": a larger model later in the chain may fit.
_CONTEXT_MARKERS = (
    "context_length_exceeded",
    "maximum context length",
    "context window",
    "exceed_context_size",
    "exceeds the available context",
    "too many tokens",
)


def _error_message(raw: bytes) -> str:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace").strip()[:500] or "no error body"
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        return str(err.get("message") or err.get("code") or err)[:500]
    if isinstance(err, str):
        return err[:500]
    return str(body)[:500]


def _verdict(model: str, status: int, raw: bytes, retry_after: str | None = None) -> UpstreamError:
    msg = _error_message(raw)
    text = (msg + raw[:2000].decode("utf-8", "replace")).lower()
    return upstream_error(
        model, status, msg, context_exceeded=any(m in text for m in _CONTEXT_MARKERS), retry_after=retry_after
    )


class OpenAICompatClient:
    def __init__(self, env: Mapping[str, str], timeout_s: float = 60.0, max_connections: int = 256) -> None:
        self._env = env
        self._timeout = timeout_s
        self._pool = H1Pool(max_per_host=max_connections)
        # Request heads per (URL, key): built once, so a call only adds its Content-Length and body.
        self._endpoints: dict[tuple[str, str], Endpoint] = {}

    async def close(self) -> None:
        self._pool.close()

    def _request(
        self, spec: ModelSpec, messages: list[dict[str, Any]], params: Mapping[str, Any], stream: bool
    ) -> tuple[Endpoint, bytes, float]:
        body: dict[str, Any] = {"model": spec.litellm_model.removeprefix("openai/"), "messages": messages}
        extra = params.get("extra_body") or {}
        body.update({k: v for k, v in params.items() if k != "extra_body"})
        body.update(extra)
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}  # the ledger needs usage; the pipeline hides it
        url = (spec.api_base or DEFAULT_BASE).rstrip("/") + "/chat/completions"
        key = api_key(spec, self._env) or ""
        ep = self._endpoints.get((url, key))
        if ep is None:
            headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
            ep = self._endpoints[(url, key)] = endpoint("POST", url, headers)
        return ep, orjson.dumps(body), min(spec.timeout_s, self._timeout)

    async def complete(
        self, spec: ModelSpec, messages: list[dict[str, Any]], params: Mapping[str, Any]
    ) -> dict[str, Any]:
        ep, data, timeout = self._request(spec, messages, params, stream=False)
        try:
            async with asyncio.timeout(timeout):
                resp = await self._pool.send(ep, data)
                raw = await resp.read()
        except TimeoutError:
            raise upstream_error(spec.name, 504, f"no answer within {timeout:g}s", timed_out=True) from None
        except OSError as e:  # refused, reset, closed early, not HTTP (h1client.HTTPError is one)
            raise upstream_error(spec.name, 502, f"connection failed: {type(e).__name__}: {e}") from None
        if resp.status >= 400:
            raise _verdict(spec.name, resp.status, raw, resp.retry_after)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise upstream_error(spec.name, 502, "the upstream answered with invalid JSON") from None
        return whole_answer(spec.name, body)

    async def stream(
        self, spec: ModelSpec, messages: list[dict[str, Any]], params: Mapping[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        """Chunks as dicts, from the upstream's server-sent events; failures raise UpstreamError."""
        ep, data, timeout = self._request(spec, messages, params, stream=True)
        # No total deadline on a stream that keeps talking: connecting and each wait for data are bounded.
        try:
            async with asyncio.timeout(timeout):
                resp = await self._pool.send(ep, data, read_timeout=timeout)
            if resp.status >= 400:
                raise _verdict(spec.name, resp.status, await resp.read(), resp.retry_after)
            pending = b""
            async with aclosing(resp.iter()) as pieces:  # leaving early closes the connection at once
                async for piece in pieces:
                    lines = (pending + piece).split(b"\n")
                    pending = lines.pop()  # an unfinished line waits for the next piece
                    for line in lines:
                        if (chunk := _event(spec.name, line)) is _DONE:
                            return  # pooled again only if the body's end came with [DONE]
                        if chunk is not None:
                            yield chunk
        except TimeoutError:
            raise upstream_error(spec.name, 504, f"no data within {timeout:g}s", timed_out=True) from None
        except OSError as e:
            raise upstream_error(spec.name, 502, f"connection failed: {type(e).__name__}: {e}") from None


_DONE: dict[str, Any] = {}


def _event(model: str, line: bytes) -> dict[str, Any] | None:
    """One line of a server-sent event stream: a chunk, `_DONE` at `[DONE]`, or None for anything else."""
    if not line.startswith(b"data:"):
        return None  # blank separators, comments, `event:` lines
    payload = line[5:].strip()
    if payload == b"[DONE]":
        return _DONE
    try:
        chunk = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise upstream_error(model, 502, "invalid JSON in the upstream's stream") from None
    if not isinstance(chunk, dict):
        return None
    if "error" in chunk:
        raise _verdict(model, 502, payload)
    return chunk
