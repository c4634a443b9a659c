"""What the response cache does for one request: whether to look up and store, under which key, and how a stored
completion is served back, as JSON or as an SSE stream (one stored form serves both).

Key: sha256 of the canonical request (messages, sampling parameters, tools, response format, pass-through
parameters; not `stream`, `stream_options` or `user`), its target and the policy's fingerprint, so a different
model, system prompt, temperature or policy version never hits. The target is the model for a request that names
one, and for a routed request (`auto`, a policy) the policy plus the classifier's identity: the same request under
the same policy and classifier is routed the same way, so a hit is served before classification and costs none of
it. The stored body names the model that answered.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from classifiers.base import Matrix
from classifiers.features import content_text
from classifiers.nearmiss import compatible
from classifiers.semantic_index import ScopedIndex
from gateway.cache import CacheStore
from gateway.errors import InvalidRequest
from gateway.protocol import ChatCompletionRequest
from router.policy import CachePolicy, Policy, TiergateConfig

TTL_HEADER = "x-tiergate-cache-ttl"
_SECONDS = re.compile(r"[0-9]{1,9}")


@dataclass(frozen=True)
class CacheDecision:
    lookup: bool
    store: bool
    ttl_s: int

    @property
    def bypass(self) -> bool:
        return not self.lookup


NO_CACHE = CacheDecision(False, False, 0)


def decide(req: ChatCompletionRequest, policy: CachePolicy, headers: Mapping[str, str]) -> CacheDecision:
    """`Cache-Control: no-cache` skips the lookup but refreshes the entry; `no-store` skips both. A malformed TTL
    header is refused whether or not this request could be cached: its 400 must not depend on the temperature."""
    ttl = policy.ttl_s
    if (raw := headers.get(TTL_HEADER)) is not None:
        # ASCII digits only: str.isdigit() also accepts "²" (a Latin-1 header byte), which int() then refuses.
        if _SECONDS.fullmatch(raw.strip()) is None or not 1 <= int(raw) <= 30 * 86400:
            raise InvalidRequest(
                f"'{TTL_HEADER}' must be a whole number of seconds from 1 to 2592000.", TTL_HEADER, "invalid_value"
            )
        ttl = int(raw)
    if policy.mode == "off" or (req.n or 1) > 1:
        return NO_CACHE
    if policy.only_deterministic and not (req.temperature == 0 or req.seed is not None):
        return NO_CACHE
    cc = {d.strip().lower() for d in headers.get("cache-control", "").split(",")}
    if "no-store" in cc:
        return NO_CACHE
    return CacheDecision(lookup="no-cache" not in cc, store=True, ttl_s=ttl)


def fingerprint(name: str, policy: Policy, config_version: str, router_id: str = "") -> str:
    raw = f"{config_version}\x00{name}\x00{policy.model_dump_json()}\x00{router_id}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def routed_target(policy: str) -> str:
    """The cache target of a request the policy routes (as opposed to one naming its model)."""
    return f"policy:{policy}"


def cache_key(req: ChatCompletionRequest, target: str, policy_fp: str) -> str:
    # The request's own digest is computed once per parsed body (gateway/body_memo.py): a repeated body's key costs
    # one short hash.
    return "chat:" + hashlib.sha256(f"{req.content_digest}\x00{target}\x00{policy_fp}".encode()).hexdigest()


def encode(body: Mapping[str, Any]) -> bytes:
    return orjson.dumps(body)


def decode(raw: bytes, rng: random.Random) -> dict[str, Any]:
    """A stored body as a fresh response: new id and time; `model` stays the one that answered."""
    body: dict[str, Any] = orjson.loads(raw)
    body.update(id=f"chatcmpl-{rng.getrandbits(96):024x}", created=int(time.time()))
    return body


def _add_call(calls: dict[int, dict[str, Any]], piece: Any) -> bool:
    """Fold one streamed tool-call delta into the calls by index: the id, type and name come once (the first given
    wins), the arguments in pieces. False if the piece is not a tool-call delta this can read."""
    if not isinstance(piece, dict) or not isinstance(i := piece.get("index", 0), int):
        return False
    call = calls.setdefault(i, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
    fn = piece.get("function") or {}
    if not isinstance(fn, dict):
        return False
    call["id"] = call["id"] or piece.get("id")
    call["type"] = piece.get("type") or call["type"]
    call["function"]["name"] = call["function"]["name"] or fn.get("name") or ""
    call["function"]["arguments"] += fn.get("arguments") or ""
    return True


def assemble(chunks: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A streamed answer as a chat.completion body, or None if it can't be replayed faithfully (several choices, the
    legacy `function_call`, a call with no id or name, or a stream that did not end)."""
    content: list[str] = []
    refusal: list[str] = []
    token_logprobs: list[Any] = []
    calls: dict[int, dict[str, Any]] = {}
    finish: str | None = None
    usage: dict[str, Any] | None = None
    role = "assistant"
    for c in chunks:
        if isinstance(c.get("usage"), dict):
            usage = c["usage"]
        for ch in c.get("choices") or []:
            delta = ch.get("delta") or {}
            if delta.get("function_call") or ch.get("index", 0) != 0:
                return None
            if not all(_add_call(calls, piece) for piece in delta.get("tool_calls") or ()):
                return None
            role = delta.get("role") or role
            content.append(delta.get("content") or "")
            refusal.append(delta.get("refusal") or "")
            finish = ch.get("finish_reason") or finish
            if isinstance(lp := ch.get("logprobs"), dict) and isinstance(lp.get("content"), list):
                token_logprobs.extend(lp["content"])
    if finish is None:
        return None  # the stream did not end normally
    if any(not c["id"] or not c["function"]["name"] for c in calls.values()):
        return None
    text = "".join(content)
    message: dict[str, Any] = {"role": role, "content": text if text or not calls else None}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    if any(refusal):
        message["refusal"] = "".join(refusal)
    choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": finish}
    if token_logprobs:
        choice["logprobs"] = {"content": token_logprobs}
    body: dict[str, Any] = {"object": "chat.completion", "choices": [choice]}
    if usage is not None:
        body["usage"] = usage
    return body


async def replay(body: dict[str, Any], include_usage: bool) -> AsyncIterator[dict[str, Any]]:
    """A stored completion as the chunks an upstream would have streamed: its text, its tool calls (a stored
    non-streamed answer may hold some: each becomes one delta with its index), then the finish and the usage."""
    base = {"id": body["id"], "object": "chat.completion.chunk", "created": body["created"], "model": body["model"]}
    choice = body["choices"][0]
    msg = choice.get("message") or {}
    yield {**base, "choices": [{"index": 0, "delta": {"role": msg.get("role", "assistant"), "content": ""}}]}
    if msg.get("content"):
        text: dict[str, Any] = {"index": 0, "delta": {"content": msg["content"]}}
        if choice.get("logprobs"):  # asked for (the request's logprobs are part of its cache key): all in one chunk
            text["logprobs"] = choice["logprobs"]
        yield {**base, "choices": [text]}
    if msg.get("refusal"):  # structured outputs: the model declined, and says why here instead of in content
        yield {**base, "choices": [{"index": 0, "delta": {"refusal": msg["refusal"]}}]}
    for i, call in enumerate(msg.get("tool_calls") or ()):
        yield {**base, "choices": [{"index": 0, "delta": {"tool_calls": [{"index": i, **call}]}}]}
    yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": choice.get("finish_reason") or "stop"}]}
    if include_usage and body.get("usage"):
        yield {**base, "choices": [], "usage": body["usage"]}


def scope_key(req: ChatCompletionRequest, target: str, policy_fp: str) -> tuple[str, str]:
    """(scope, text): the request without its last user turn (system prompt, history, parameters), and that turn."""
    messages = [m.model_dump(exclude_none=True) for m in req.messages]
    last = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=len(messages) - 1)
    text = content_text(messages[last].get("content"))
    messages[last] = {"role": messages[last].get("role")}
    body = req.model_dump(exclude_none=True, exclude={"model", "stream", "stream_options", "user", "messages"})
    canonical = orjson.dumps([body, messages, target, policy_fp], option=orjson.OPT_SORT_KEYS)
    return "scope:" + hashlib.sha256(canonical).hexdigest(), text


EmbedFn = Callable[[str], Awaitable[Matrix]]


class ChatCache:
    """The response cache as the pipeline uses it: decisions per policy, lookups, and stores in the background.

    `embed` (the classifier's encoder) enables the semantic layer for policies that opt in.
    """

    def __init__(
        self,
        store: CacheStore | None,
        config: TiergateConfig,
        embed: EmbedFn | None = None,
        dim: int = 384,
        router_id: str = "",
    ) -> None:
        """`router_id` names the classifier (its artifact's hash): a retrained one may route differently."""
        self.store = store
        self._dim, self._router_id = dim, router_id
        self._ids = random.Random(os.urandom(16))  # completion ids of replayed answers (unique, not secret)
        self._policies = config.policies
        self._fp = {n: fingerprint(n, p, config.version, router_id) for n, p in config.policies.items()}
        self._pending: set[asyncio.Task[None]] = set()
        self._embed = embed
        self._recent: OrderedDict[str, Matrix] = OrderedDict()
        self._index = {
            n: ScopedIndex(dim, p.cache.semantic.max_entries_per_scope)
            for n, p in config.policies.items()
            if p.cache.semantic.enabled and embed is not None
        }

    def reconfigured(self, config: TiergateConfig) -> ChatCache:
        """The cache for a reloaded policy file: the same store and background stores, and the semantic index of
        every policy whose fingerprint is unchanged (a changed policy's answers are no longer its answers)."""
        new = ChatCache(self.store, config, self._embed, self._dim, self._router_id)
        new._pending = self._pending  # so that drain() at shutdown still waits for stores the old one started
        new._recent = self._recent
        for name in new._index:
            if self._fp.get(name) == new._fp[name] and name in self._index:
                new._index[name] = self._index[name]
        return new

    async def lookup_semantic(
        self, req: ChatCompletionRequest, target: str, policy: str
    ) -> tuple[dict[str, Any], float] | None:
        """After an exact miss: the closest earlier prompt in scope, if similar enough and the guard agrees."""
        index = self._index.get(policy)
        if index is None or self._embed is None or self.store is None:
            return None
        scope, text = scope_key(req, target, self._fp[policy])
        match = index.search(scope, await self._vector(text))
        if match is None or match.similarity < self._policies[policy].cache.semantic.threshold:
            return None
        if not compatible(match.text, text):
            return None
        raw = await self.store.get(match.key)
        return (decode(raw, self._ids), match.similarity) if raw is not None else None

    async def _vector(self, text: str) -> Matrix:
        """The text's embedding; a miss looks up, then indexes the same text, so the vector is kept briefly."""
        assert self._embed is not None
        vec = self._recent.pop(text, None)
        if vec is None:
            vec = await self._embed(text)
        self._recent[text] = vec
        while len(self._recent) > 256:
            self._recent.popitem(last=False)
        return vec

    async def _index_later(self, req: ChatCompletionRequest, target: str, policy: str, key: str) -> None:
        scope, text = scope_key(req, target, self._fp[policy])
        self._index[policy].add(scope, await self._vector(text), text, key)

    def decide(self, req: ChatCompletionRequest, policy: str, headers: Mapping[str, str]) -> CacheDecision:
        return NO_CACHE if self.store is None else decide(req, self._policies[policy].cache, headers)

    def key(self, req: ChatCompletionRequest, target: str, policy: str) -> str:
        """The exact-match key; computed once per request, for the lookup and the store after a miss."""
        return cache_key(req, target, self._fp[policy])

    async def lookup(self, key: str) -> dict[str, Any] | None:
        assert self.store is not None
        raw = await self.store.get(key)
        return decode(raw, self._ids) if raw is not None else None

    def save(
        self, req: ChatCompletionRequest, target: str, policy: str, key: str, body: Mapping[str, Any], ttl_s: int
    ) -> None:
        """Store off the response path: the client never waits for the cache."""
        assert self.store is not None
        jobs = [self.store.set(key, encode(body), ttl_s)]
        if policy in self._index:
            jobs.append(self._index_later(req, target, policy, key))
        for job in jobs:
            task = asyncio.ensure_future(job)
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    @property
    def pending(self) -> int:
        """Stores (and semantic-index updates) scheduled and not yet finished."""
        return len(self._pending)

    async def drain(self) -> None:
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def probe(self) -> bool:
        """Whether the store answers now (gateway/cache.py: probe), for /readyz."""
        return self.store is None or await self.store.probe()
