"""The lean path: chat calls to OpenAI-compatible upstreams (`openai/...` models) over one pooled aiohttp session.

It sends what litellm would send for such a model (POST <api_base>/chat/completions, the model name without the
`openai/` prefix, the messages and parameters, `extra_body` merged at the top level as the OpenAI SDK does) and
gives failures the same verdicts (gateway/provider.py: `upstream_error`), without litellm's per-call work, which
costs more CPU than the whole rest of a request (docs/benchmarks.md). Other providers still go through litellm.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson

from gateway.provider import UpstreamError, api_key, upstream_error
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


def _verdict(model: str, status: int, raw: bytes) -> UpstreamError:
    msg = _error_message(raw)
    text = (msg + raw[:2000].decode("utf-8", "replace")).lower()
    return upstream_error(model, status, msg, context_exceeded=any(m in text for m in _CONTEXT_MARKERS))


class OpenAICompatClient:
    def __init__(self, env: Mapping[str, str], timeout_s: float = 60.0) -> None:
        self._env = env
        self._timeout = timeout_s
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running event loop; one per process, reused by every request.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=512, limit_per_host=256, ttl_dns_cache=300),
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    def _request(
        self, spec: ModelSpec, messages: list[dict[str, Any]], params: Mapping[str, Any], stream: bool
    ) -> tuple[str, dict[str, str], bytes, float]:
        body: dict[str, Any] = {"model": spec.litellm_model.removeprefix("openai/"), "messages": messages}
        extra = params.get("extra_body") or {}
        body.update({k: v for k, v in params.items() if k != "extra_body"})
        body.update(extra)
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}  # the ledger needs usage; the pipeline hides it
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key(spec, self._env)}"}
        url = (spec.api_base or DEFAULT_BASE).rstrip("/") + "/chat/completions"
        return url, headers, orjson.dumps(body), min(spec.timeout_s, self._timeout)

    async def complete(
        self, spec: ModelSpec, messages: list[dict[str, Any]], params: Mapping[str, Any]
    ) -> dict[str, Any]:
        url, headers, data, timeout = self._request(spec, messages, params, stream=False)
        try:
            async with self._http().post(
                url, data=data, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise _verdict(spec.name, resp.status, raw)
        except TimeoutError:
            raise upstream_error(spec.name, 504, f"no answer within {timeout:g}s", timed_out=True) from None
        except aiohttp.ClientError as e:
            raise upstream_error(spec.name, 502, f"connection failed: {type(e).__name__}: {e}") from None
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise upstream_error(spec.name, 502, "the upstream answered with invalid JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("choices"), list):
            raise upstream_error(spec.name, 502, "the upstream's answer is not a chat completion")
        return body

    async def stream(
        self, spec: ModelSpec, messages: list[dict[str, Any]], params: Mapping[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        """Chunks as dicts, from the upstream's server-sent events; failures raise UpstreamError."""
        url, headers, data, timeout = self._request(spec, messages, params, stream=True)
        # No total deadline on a stream that keeps talking: connecting and each wait for data are bounded.
        limits = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
        try:
            async with self._http().post(url, data=data, headers=headers, timeout=limits) as resp:
                if resp.status >= 400:
                    raise _verdict(spec.name, resp.status, await resp.read())
                async for line in resp.content:
                    if not line.startswith(b"data:"):
                        continue  # blank separators, comments, `event:` lines
                    payload = line[5:].strip()
                    if payload == b"[DONE]":
                        return
                    try:
                        chunk = orjson.loads(payload)
                    except orjson.JSONDecodeError:
                        raise upstream_error(spec.name, 502, "invalid JSON in the upstream's stream") from None
                    if isinstance(chunk, dict) and "error" in chunk:
                        raise _verdict(spec.name, 502, payload)
                    yield chunk
        except TimeoutError:
            raise upstream_error(spec.name, 504, f"no data within {timeout:g}s", timed_out=True) from None
        except aiohttp.ClientError as e:
            raise upstream_error(spec.name, 502, f"connection failed: {type(e).__name__}: {e}") from None
