"""Which path a model's calls take: OpenAI-compatible models the lean direct client, every other one litellm."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from gateway.openai_compat import OpenAICompatClient
from gateway.provider import LitellmProvider
from router.policy import EmbeddingModelSpec, ModelSpec, TiergateConfig


def needs_litellm(cfg: TiergateConfig) -> bool:
    return bool(cfg.embedding_models) or any(not d.openai_compatible for m in cfg.models for d in m.expanded())


# Each choice parameter that can forbid calls, with what it governs: tools, and OpenAI's deprecated functions.
_TOOL_PARAMS = {
    "tool_choice": ("tools", "tool_choice", "parallel_tool_calls"),
    "function_call": ("functions", "function_call"),
}


def for_model(spec: ModelSpec, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """The parameters as `spec` takes them: a request that forbids tool calls (`tool_choice: "none"`, or
    `function_call: "none"`) may be routed to a model without tool calling (gateway/protocol.py: needs), and such a
    model is sent no tools, which its server may refuse or mis-render; the tool-call history in the messages stays,
    as context."""
    if spec.capabilities.tools:
        return params
    drop = {name for choice, names in _TOOL_PARAMS.items() if params.get(choice) == "none" for name in names}
    return {k: v for k, v in params.items() if k not in drop} if drop else params


class Transport:
    """litellm is loaded on first need (or at once with `preload_litellm`, so no request pays for its import)."""

    def __init__(
        self,
        env: Mapping[str, str],
        timeout_s: float = 60.0,
        preload_litellm: bool = False,
        max_connections: int = 256,
    ) -> None:
        self._env, self._timeout = env, timeout_s
        self._litellm: LitellmProvider | None = None
        self.direct = OpenAICompatClient(env, timeout_s, max_connections)
        if preload_litellm:
            self._litellm = LitellmProvider(env, timeout_s)

    @property
    def litellm(self) -> LitellmProvider:
        if self._litellm is None:
            self._litellm = LitellmProvider(self._env, self._timeout)
        return self._litellm

    async def complete(
        self, spec: ModelSpec, messages: list[dict[str, Any]], params: Mapping[str, Any]
    ) -> dict[str, Any]:
        params = for_model(spec, params)
        if spec.openai_compatible:
            return await self.direct.complete(spec, messages, params)
        return await self.litellm.complete(spec, messages, params)

    def stream(
        self, spec: ModelSpec, messages: list[dict[str, Any]], params: Mapping[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        params = for_model(spec, params)
        if spec.openai_compatible:
            return self.direct.stream(spec, messages, params)
        return self.litellm.stream(spec, messages, params)

    async def embed(self, spec: EmbeddingModelSpec, inputs: list[str], params: Mapping[str, Any]) -> dict[str, Any]:
        return await self.litellm.embed(spec, inputs, params)

    async def close(self) -> None:
        await self.direct.close()
