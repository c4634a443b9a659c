"""Calls to upstream chat and embedding models through litellm, and what its exceptions mean for routing.

litellm does the provider translation and exception mapping; this module only adds what Tiergate needs: the
API key looked up by variable name, no hidden retries (the pipeline owns fallbacks), usage always requested on
streams (the ledger needs it), and a verdict per failure: try the next candidate, or the client's own fault.
"""

from __future__ import annotations

import email.utils
import importlib.util
import json
import math
import os
import re
import time
import warnings
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router.policy import EmbeddingModelSpec, ModelSpec, Price

# A local OpenAI-compatible server (llama.cpp, vLLM, Ollama) takes any key; litellm's OpenAI client wants one.
_NO_KEY = "sk-tiergate-no-key"
# Statuses at which the next candidate may do better: rate limits, timeouts, upstream outages, and the
# upstream's own auth/context errors (a config problem with that model, not with the client's request).
_RETRYABLE = {401, 403, 404, 408, 409, 429, 500, 502, 503, 504, 520, 524, 529}


@dataclass(frozen=True)
class UpstreamError(Exception):
    model: str
    status: int
    message: str
    retryable: bool
    context_exceeded: bool = False
    retry_after_s: float | None = None  # the upstream's Retry-After, in seconds from now

    @property
    def model_fault(self) -> bool:
        """Does this failure say the model is unwell (down, slow, rate-limited, misconfigured), rather than that
        the request was wrong for it? Only those count towards a cooldown."""
        return not self.context_exceeded and (self.status in _RETRYABLE or self.status >= 500)

    def __str__(self) -> str:
        return f"{self.model}: HTTP {self.status}: {self.message}"


def api_key(spec: ModelSpec | EmbeddingModelSpec, env: Mapping[str, str]) -> str | None:
    """The model's key, `_NO_KEY` when it needs none, or None when its variable is unset (model unavailable)."""
    if spec.api_key_env is None:
        return _NO_KEY
    return env.get(spec.api_key_env) or None


def unavailable_models(models: list[ModelSpec], env: Mapping[str, str] | None = None) -> set[str]:
    """Models none of whose deployments has its key set."""
    e = os.environ if env is None else env
    return {m.name for m in models if all(api_key(d, e) is None for d in m.expanded())}


def upstream_error(
    model: str,
    status: int,
    message: str,
    *,
    context_exceeded: bool = False,
    timed_out: bool = False,
    retry_after: str | None = None,
) -> UpstreamError:
    """The verdict on one failed call, the same whichever path made it: may the next candidate do better?"""
    if timed_out:
        return UpstreamError(model, 504, message, True)
    # A prompt too long for this model may fit a larger one later in the chain.
    retryable = context_exceeded or status in _RETRYABLE or status >= 500
    return UpstreamError(model, status, message, retryable, context_exceeded, retry_after_seconds(retry_after))


def whole_answer(model: str, body: object) -> dict[str, Any]:
    """An upstream's whole answer, if it is a chat completion with at least one choice; else the model's fault (a 502,
    so the chain moves on). A 200 with `choices: []` passed to the client as an answer broke its `choices[0]`,
    and could be cached; no server answers so unless it is broken (OpenAI refuses what it will not answer)."""
    if not isinstance(body, dict) or not isinstance(body.get("choices"), list):
        raise upstream_error(model, 502, "the upstream's answer is not a chat completion")
    if not body["choices"]:
        raise upstream_error(model, 502, "the upstream's answer has no choices")
    return body


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """A Retry-After header as seconds from now: delta-seconds or an HTTP date (RFC 9110); None if absent, past or
    not understood."""
    if not value or not (v := value.strip()):
        return None
    try:
        s = float(v)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(v)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        s = when.timestamp() - (time.time() if now is None else now)
    return s if s > 0 and math.isfinite(s) else None


_LITELLM_PREFIX = re.compile(r"^(?:(?:litellm\.)?\w+(?:Error|Exception)(?::| -) )+")


def _classify(model: str, exc: Exception) -> UpstreamError:
    import litellm

    status = int(getattr(exc, "status_code", 0) or 0) or 500
    response = getattr(exc, "response", None)  # openai's errors keep the httpx response litellm got
    headers = getattr(response, "headers", None)
    retry_after = headers.get("retry-after") if headers is not None and hasattr(headers, "get") else None
    # litellm prefixes messages with its own class names ("litellm.BadRequestError: ... OpenAIException - "): the
    # upstream's own words are what a client can act on. The first line only, never a traceback.
    said = str(getattr(exc, "message", exc)).strip()
    msg = _LITELLM_PREFIX.sub("", said.splitlines()[0])[:500] if said else type(exc).__name__
    return upstream_error(
        model,
        status,
        msg,
        context_exceeded=isinstance(exc, litellm.exceptions.ContextWindowExceededError),
        timed_out=isinstance(exc, litellm.exceptions.Timeout),
        retry_after=retry_after if isinstance(retry_after, str) else None,
    )


class LitellmProvider:
    """Imports litellm when built (~150 MB of RSS), so a gateway whose models are all OpenAI-compatible never does."""

    def __init__(self, env: Mapping[str, str] | None = None, timeout_s: float = 60.0) -> None:
        import litellm

        self._env = os.environ if env is None else env
        self._timeout = timeout_s
        litellm.suppress_debug_info = True  # else litellm prints a help banner on every exception
        litellm.telemetry = False
        # litellm's acompletion has a worker thread build the provider's coroutine, then awaits it. A call cancelled
        # in between (its client left: gateway/disconnect.py) drops that coroutine unstarted, so no request was
        # sent, and Python warns about it on stderr every time. Nothing is wrong; the 499 is on record.
        warnings.filterwarnings("ignore", r"coroutine '\w+\.acompletion\w*' was never awaited", RuntimeWarning)
        self._litellm = litellm

    def _kwargs(self, spec: ModelSpec, params: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "model": spec.litellm_model,
            "api_base": spec.api_base,
            "api_key": api_key(spec, self._env),
            "timeout": min(spec.timeout_s, self._timeout),
            "max_retries": 0,
            "num_retries": 0,
            **params,
        }

    async def complete(
        self, spec: ModelSpec, messages: list[dict[str, Any]], params: Mapping[str, Any]
    ) -> dict[str, Any]:
        try:
            resp = await self._litellm.acompletion(messages=messages, stream=False, **self._kwargs(spec, params))
        except Exception as e:  # litellm raises its mapped subclasses of openai's errors; classify them all
            raise _classify(spec.name, e) from e
        return whole_answer(spec.name, resp.model_dump(exclude_none=True))

    async def stream(
        self, spec: ModelSpec, messages: list[dict[str, Any]], params: Mapping[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        """Chunks as dicts. Errors before the first chunk and mid-stream both raise UpstreamError."""
        kwargs = self._kwargs(spec, params)
        kwargs["stream_options"] = {"include_usage": True}
        try:
            it = await self._litellm.acompletion(messages=messages, stream=True, **kwargs)
            async for chunk in it:
                yield chunk.model_dump(exclude_none=True)
        except UpstreamError:
            raise
        except Exception as e:
            raise _classify(spec.name, e) from e

    async def embed(self, spec: EmbeddingModelSpec, inputs: list[str], params: Mapping[str, Any]) -> dict[str, Any]:
        try:
            resp = await self._litellm.aembedding(
                model=spec.litellm_model,
                input=inputs,
                api_base=spec.api_base,
                api_key=api_key(spec, self._env),
                timeout=self._timeout,
                max_retries=0,
                **params,
            )
        except Exception as e:
            raise _classify(spec.name, e) from e
        body: dict[str, Any] = resp.model_dump(exclude_none=True)
        return body


def reference_prices() -> dict[str, Price]:
    """litellm's local price table as USD per million tokens (input, output, cached input), by litellm model name.

    Read from the JSON file litellm ships (the one LITELLM_LOCAL_MODEL_COST_MAP makes it use), without importing
    litellm itself: pricing must not cost a gateway litellm's memory when no model needs its translation.
    """
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return {}
    table = Path(next(iter(spec.submodule_search_locations))) / "model_prices_and_context_window_backup.json"
    out: dict[str, Price] = {}
    for name, entry in json.loads(table.read_text(encoding="utf-8")).items():
        if not isinstance(entry, dict):
            continue
        i, o = entry.get("input_cost_per_token"), entry.get("output_cost_per_token")
        c = entry.get("cache_read_input_token_cost")
        if isinstance(i, int | float) and isinstance(o, int | float):
            cached = float(c) * 1e6 if isinstance(c, int | float) and c >= 0 else None
            out[name] = Price(
                input_per_mtok=float(i) * 1e6, output_per_mtok=float(o) * 1e6, cached_input_per_mtok=cached
            )
    return out
